"""Email subjects and bodies, and the pages the links in them open, from Jinja2 templates.

The built-in templates are in homeserver/email/templates; a file of the same name
in `email.template_dir` replaces one. An email of kind K is three templates:
`K.subject.txt`, `K.txt` (the plain-text part) and `K.html` (HTML, autoescaped).
Templates are read once and cached; rendering is a few microseconds of CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from homeserver.email.mailer import Email

_BUILT_IN = Path(__file__).resolve().parent / "templates"


class Templates:
    def __init__(self, override_dir: Path | None, app_name: str) -> None:
        search = [str(override_dir)] if override_dir is not None else []
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*search, str(_BUILT_IN)]),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self._app_name = app_name

    def render(self, name: str, **values: Any) -> str:
        return self._env.get_template(name).render(app_name=self._app_name, **values)

    def email(self, kind: str, to: str, **values: Any) -> Email:
        subject = " ".join(self.render(f"{kind}.subject.txt", **values).split())
        return Email(
            to=to,
            subject=subject,
            text=self.render(f"{kind}.txt", subject=subject, **values),
            html=self.render(f"{kind}.html", subject=subject, **values),
        )
