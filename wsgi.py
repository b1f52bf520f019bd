"""gunicorn's entry point: ``gunicorn wsgi:app``."""

from kyffikus import create_app

app = create_app()
