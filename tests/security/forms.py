"""Find the forms a page offers (action, method, fields with their current values), with html.parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit


@dataclass
class Field:
    """One named control of a form."""

    name: str
    kind: str  # input type, "textarea", "select" or "button"
    value: str = ""
    options: list[str] = field(default_factory=list)


@dataclass
class Form:
    """A form as a browser would submit it."""

    action: str
    method: str
    page: str
    fields: list[Field] = field(default_factory=list)

    def signature(self) -> tuple[str, str, tuple[str, ...]]:
        """What makes two forms the same (for de-duplication)."""
        return (self.method, self.action, tuple(sorted({f.name for f in self.fields})))

    def defaults(self) -> dict[str, str]:
        """The values a plain submit sends (checkboxes only when checked; no buttons)."""
        out: dict[str, str] = {}
        for f in self.fields:
            if f.kind in ("button", "submit", "checkbox-off", "file"):
                continue
            if f.kind == "select" and not f.value and f.options:
                out[f.name] = f.options[0]
            else:
                out.setdefault(f.name, f.value)
        return out


class _Parser(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.select: Field | None = None
        self.textarea: Field | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            action = a.get("action") or self.page
            self.form = Form(
                action=urljoin(self.page, action),
                method=(a.get("method") or "get").upper(),
                page=self.page,
            )
            self.forms.append(self.form)
            return
        if tag == "option" and self.select is not None:
            value = a.get("value", "")
            self.select.options.append(value)
            if "selected" in a:
                self.select.value = value
            return
        if self.form is None or "name" not in a or "disabled" in a:
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                kind = "checkbox-off"
            self.form.fields.append(
                Field(
                    a["name"],
                    kind,
                    a.get("value", "on" if kind.startswith(("checkbox", "radio")) else ""),
                )
            )
        elif tag == "textarea":
            self.textarea = Field(a["name"], "textarea")
            self.form.fields.append(self.textarea)
        elif tag == "select":
            self.select = Field(a["name"], "select")
            self.form.fields.append(self.select)
        elif tag == "button" and a.get("name"):
            self.form.fields.append(Field(a["name"], "button", a.get("value", "")))

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.textarea.value += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def find_forms(html: str, page: str) -> list[Form]:
    """Every form of a page, with actions made absolute paths on this site."""
    parser = _Parser(page)
    parser.feed(html)
    forms = []
    for form in parser.forms:
        parts = urlsplit(form.action)
        if parts.netloc and parts.netloc not in ("localhost",):
            continue
        form.action = parts.path + (f"?{parts.query}" if parts.query else "")
        forms.append(form)
    return forms
