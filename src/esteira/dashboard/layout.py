"""The page around every dashboard view: style, navigation between views, environments
and models, and the small HTML pieces the views share (tables, badges, empty states).
Everything goes through markupsafe: text is escaped unless it is built as markup here."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from esteira.dashboard.data import MlflowLinks

VIEWS = (("overview", "/"), ("pipeline runs", "/runs"), ("CT runs", "/ct"),
         ("gates", "/gates"), ("monitoring", "/monitoring"), ("serving", "/serving"))  # fmt: skip

CSS = """
:root{--ink:#1f2933;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--ok:#1a7f37;--bad:#c62828;
--warn:#b45309;--link:#1d4ed8}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
sans-serif;color:var(--ink);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:10px 24px}
header .top{display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header b.brand{font-size:16px}nav a{margin-right:14px}nav a.on{font-weight:600;color:var(--ink);
text-decoration:none;border-bottom:2px solid var(--ink)}
.pick{color:var(--muted);font-size:13px}.pick a,.pick span{margin-left:6px}
.pick span.on{font-weight:600;color:var(--ink)}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:21px;margin:8px 0 4px}h2{font-size:16px;margin:26px 0 8px}
a{color:var(--link)}code{background:#eef2f7;padding:1px 5px;border-radius:4px}
.sub{color:var(--muted)}.empty{background:#fff;border:1px dashed #cbd5e1;border-radius:8px;
padding:12px 16px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{padding:5px 9px;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
th{background:#f1f5f9;font-weight:600;font-size:13px}tr:nth-child(even) td{background:#fbfcfd}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600}
.badge.ok{background:#dcfce7;color:var(--ok)}.badge.bad{background:#fee2e2;color:var(--bad)}
.badge.warn{background:#fef3c7;color:var(--warn)}.badge.none{background:#e5e7eb;color:#374151}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px;
min-width:150px}.card b{display:block;font-size:21px}.card a{text-decoration:none}
figure.chart{margin:8px 0 16px;background:#fff;border:1px solid var(--line);border-radius:8px;
padding:8px 12px;overflow-x:auto}figcaption{font-weight:600;margin-bottom:4px}
.legend{font-size:12px;color:var(--muted)}.legend i{display:inline-block;width:10px;
height:10px;margin:0 4px 0 12px;border-radius:2px}
h3{font-size:15px;margin:16px 0 6px}td.num,td:first-child{white-space:nowrap}
table.facts th{width:120px;background:#f8fafc}th.num{text-align:right}
"""


@dataclass(frozen=True)
class Place:
    """Where a view is: the project, the environment and model it shows, and where to link."""

    project: str
    root: str
    """The project folder as given to `esteira dashboard`, for the commands a view suggests."""
    env: str
    environments: list[str]
    model: str | None
    models: list[str]
    mlflow: MlflowLinks

    def href(self, path: str, **query: str | None) -> str:
        """A dashboard address in this environment and for this model, unless `query`
        names others."""
        wanted = {"env": self.env, "model": self.model, **query}
        return f"{path}?{urlencode({k: v for k, v in wanted.items() if v})}"

    def command(self, text: str) -> str:
        """An esteira command for this project and environment."""
        env = f" --env {self.env}" if self.env != "dev" else ""
        return f"esteira {text} -p {self.root}{env}"


def page(place: Place, active: str, title: str, body: Markup | str) -> str:
    """A whole HTML page: header, navigation, the view's body."""
    on = Markup(" class=on")
    nav = Markup("").join(
        Markup('<a href="{}"{}>{}</a>').format(place.href(path), on if name == active else "", name)
        for name, path in VIEWS
    )
    path = next((p for n, p in VIEWS if n == active), "/")
    envs = _picker("environment", place.environments, place.env,
                   lambda e: place.href(path, env=e, model=None))  # fmt: skip
    models = _picker("model", place.models, place.model or "",
                     lambda m: place.href(path, model=m))  # fmt: skip
    header = Markup(
        "<div class=top><b class=brand>esteira</b><span>{} · {}</span><nav>{}</nav></div>"
        "<div class=pick>{} {}</div>"
    ).format(place.project, place.env, nav, envs, models)
    return document(f"{title} · {place.project} · esteira", header, body)


def document(title: str, header: Markup, body: Markup | str) -> str:
    """A whole HTML page, self-contained: its style inline, nothing fetched (the icon too)."""
    return str(Markup(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=icon href="data:,"><title>{}</title><style>{}</style></head>'
        "<body><header>{}</header><main>{}</main></body></html>"
    ).format(title, Markup(CSS), header, body))  # fmt: skip


def _picker(what: str, names: Sequence[str], current: str, link: Any) -> Markup:
    if len(names) < 2 and what == "model":
        return Markup("")
    choices = Markup("").join(
        Markup("<span class=on>{}</span>").format(n) if n == current
        else Markup('<a href="{}">{}</a>').format(link(n), n)
        for n in names
    )  # fmt: skip
    return Markup("<span>{}:</span>{}").format(what, choices)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()
          ) -> Markup:  # fmt: skip
    """A table; cells that are not markup are escaped; `numeric`: columns aligned right."""
    head = Markup("").join(Markup("<th{}>{}</th>").format(Markup(" class=num") if i in numeric
                                                          else "", h)
                           for i, h in enumerate(headers))  # fmt: skip
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(Markup("").join(
            Markup("<td{}>{}</td>").format(Markup(" class=num") if i in numeric else "", cell)
            for i, cell in enumerate(row)
        ))
        for row in rows
    )  # fmt: skip
    return Markup("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>").format(head, body)


def facts_table(facts: Iterable[tuple[str, Any]]) -> Markup:
    """A table of named facts, the name in the first column."""
    rows = Markup("").join(Markup("<tr><th>{}</th><td>{}</td></tr>").format(name, value)
                           for name, value in facts)  # fmt: skip
    return Markup("<table class=facts><tbody>{}</tbody></table>").format(rows)


def empty(message: str, *commands: str) -> Markup:
    """A view with nothing to show yet: what is missing and the commands that make it."""
    if not commands:
        return Markup("<p class=empty>{}</p>").format(message)
    shown = Markup(" or ").join(Markup("<code>{}</code>").format(c) for c in commands)
    return Markup("<p class=empty>{}: {}</p>").format(message, shown)


def badge(text: str, kind: str) -> Markup:
    """A status word: kind is ok, bad, warn or none."""
    return Markup('<span class="badge {}">{}</span>').format(kind, text)


STATUS_KIND = {"completed": "ok", "passed": "ok", "cached": "ok", "failed": "bad",
               "died": "bad", "interrupted": "warn", "running": "warn"}  # fmt: skip


def status(text: str) -> Markup:
    return badge(text, STATUS_KIND.get(text, "none"))


def link(href: str, text: Any) -> Markup:
    """A link, or the bare text where there is no address."""
    if not href:
        return Markup("{}").format(text)
    return Markup('<a href="{}">{}</a>').format(href, text)


def cards(items: Iterable[tuple[str, Any, str]]) -> Markup:
    """Headline figures: (label, value, address or "")."""
    return Markup("<div class=cards>{}</div>").format(Markup("").join(
        Markup("<div class=card>{}<b>{}</b></div>").format(label, link(href, value))
        for label, value, href in items
    ))  # fmt: skip


def when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at is not None else "-"


def number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def seconds(value: float | None) -> str:
    return f"{value:.2f} s" if value is not None else "-"

