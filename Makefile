# Kyffikus: `make run` to try it, `make test` to check it. Python 3.11 and make are all it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app kyffikus
PO := $(wildcard kyffikus/translations/*/LC_MESSAGES/messages.po)
MO := $(PO:.po=.mo)

.PHONY: schema run test test-sqlite test-postgres lint fmt bench translations extract-messages clean

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) is needed (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

.venv: $(STAMP)

%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -i $< -o $@ >/dev/null

translations: $(MO)

run: $(STAMP) translations
	KYFFIKUS_ENV=development KYFFIKUS_MAIL_BACKEND=console KYFFIKUS_DEMO=1 $(FLASK) db upgrade
	KYFFIKUS_ENV=development KYFFIKUS_MAIL_BACKEND=console KYFFIKUS_DEMO=1 $(FLASK) bootstrap
	KYFFIKUS_ENV=development KYFFIKUS_MAIL_BACKEND=console KYFFIKUS_DEMO=1 $(FLASK) run --host 127.0.0.1 --port 5000

# The whole suite on SQLite; again on PostgreSQL when KYFFIKUS_TEST_DATABASE_URL is set.
test: $(STAMP) translations
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q
	@if [ -n "$$KYFFIKUS_TEST_DATABASE_URL" ]; then \
	  echo "== the same suite on PostgreSQL =="; \
	  KYFFIKUS_TEST_BACKEND=postgres $(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not browser"; \
	else echo "PostgreSQL run skipped: KYFFIKUS_TEST_DATABASE_URL is not set"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# German msgids from the code and templates into messages.pot, then into each language's .po
# (English is created on first use). Translate the empty msgstr entries, then `make translations`.
extract-messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k ngettext:1,2 -o kyffikus/translations/messages.pot --no-location --sort-output --project Kyffikus --copyright-holder "Landratsamt Kyffhäuserkreis" .
	test -f kyffikus/translations/en/LC_MESSAGES/messages.po || $(BIN)/pybabel init -i kyffikus/translations/messages.pot -d kyffikus/translations -l en
	$(BIN)/pybabel update -i kyffikus/translations/messages.pot -d kyffikus/translations --no-fuzzy-matching

bench: $(STAMP) translations
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .pytest_cache

# Before the first release the schema is one migration, regenerated from the models.
# After the first release, use `$(FLASK) db migrate -m "..."` for each change instead.
schema: $(STAMP)
	rm -f migrations/versions/0001_initial.py /tmp/kyffikus-schema.sqlite
	DATABASE_URL=sqlite:////tmp/kyffikus-schema.sqlite KYFFIKUS_ENV=development $(FLASK) db migrate -m initial --rev-id 0001 >/dev/null
	mv migrations/versions/0001_initial_.py migrations/versions/0001_initial.py 2>/dev/null || true
	rm -f /tmp/kyffikus-schema.sqlite
	@echo "migrations/versions/0001_initial.py regenerated"
