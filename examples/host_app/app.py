"""The host app: its factory, its users and notes, its pages, and Beacon mounted under a prefix."""
from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, session, url_for
from flask.cli import AppGroup
from sqlalchemy.engine import Engine
from werkzeug.security import check_password_hash, generate_password_hash

from intranet import Intranet

HERE = Path(__file__).resolve().parent

#: One Beacon extension object may serve several host apps; each keeps its own state.
intranet = Intranet()

#: The host's own tables, in the host's own metadata (Beacon's live in Beacon's).
metadata = sa.MetaData()
users = sa.Table(
    "host_users", metadata,
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
)
notes = sa.Table(
    "host_notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("author", sa.String(320), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

#: The host's own security headers: looser than Beacon's (it allows inline styles), on its pages only.
HOST_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'"

pages = Blueprint("host", __name__)


@intranet.employee_loader
def signed_in_email() -> str | None:
    """Who is signed in to the host: Beacon finds the employee with this email."""
    return session.get("email")


def host_db() -> Engine:
    return current_app.extensions["host_db"]  # type: ignore[no-any-return]


@pages.after_request
def host_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", HOST_CSP)
    response.headers.setdefault("X-Host-Page", "yes")
    return response


@pages.get("/")
def home():  # type: ignore[no-untyped-def]
    with host_db().connect() as conn:
        rows = conn.execute(sa.select(notes).order_by(notes.c.id.desc()).limit(20)).all()
    return render_template("host/home.html", email=session.get("email"), notes=rows,
                           news_url=url_for("intranet_feed.index"))


@pages.post("/notes")
def add_note():  # type: ignore[no-untyped-def]
    # This host protects its forms with SameSite=Strict cookies, not tokens: Beacon's CSRF check
    # is Beacon's and never reaches this form.
    if "email" not in session:
        return redirect(url_for("host.login"))
    with host_db().begin() as conn:
        conn.execute(notes.insert().values(author=session["email"], text=request.form["text"][:500]))
    return redirect(url_for("host.home"))


@pages.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    error = None
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        with host_db().connect() as conn:
            stored = conn.execute(sa.select(users.c.password_hash).where(users.c.email == email)).scalar()
        if stored and check_password_hash(stored, request.form.get("password", "")):
            session.clear()
            session["email"] = email
            return redirect(_local(request.args.get("next")) or url_for("host.home"))
        error = "Unknown email or wrong password."
    return render_template("host/login.html", error=error), 401 if error else 200


@pages.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    session.clear()
    return redirect(url_for("host.home"))


def _local(target: str | None) -> str | None:
    # Beacon hands over next= as a path of this site; anything else is ignored.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


host_cli = AppGroup("host", help="The host intranet's own commands.")


@host_cli.command("add-user")
@click.argument("email")
@click.argument("password")
def add_user(email: str, password: str) -> None:
    """Let EMAIL sign in to the host with PASSWORD (Beacon shows them the news for that email)."""
    engine = current_app.extensions["host_db"]
    with engine.begin() as conn:
        conn.execute(users.delete().where(users.c.email == email.lower()))
        conn.execute(users.insert().values(email=email.lower(), password_hash=generate_password_hash(password)))
    click.echo(f"{email} may sign in.")


def create_app(config: Mapping[str, Any] | None = None, *, beacon_engine: Engine | None = None) -> Flask:
    """Build the host intranet with Beacon under ``INTRANET_URL_PREFIX`` (``/news`` here).

    :param config: overrides; a deployment sets ``SECRET_KEY``, ``INTRANET_SECRET_KEY`` and real
        database URLs, and drops ``INTRANET_ENV=development``.
    :param beacon_engine: Beacon's database engine, instead of one built from ``INTRANET_DATABASE_URL``.
    """
    app = Flask(__name__, instance_path=str(HERE / "instance"))
    app.config.from_mapping(
        SECRET_KEY=secrets.token_hex(32),  # the host's key: signs the host's session cookie
        SESSION_COOKIE_NAME="host_session",
        SESSION_COOKIE_SAMESITE="Strict",
        HOST_DATABASE_URL=f"sqlite:///{HERE / 'instance' / 'host.db'}",
        INTRANET_ENV="development",
        INTRANET_URL_PREFIX="/news",
        INTRANET_SIGN_IN_URL="/login",  # Beacon sends people who are not signed in here, with ?next=
        INTRANET_ORG_NAME="Host News",
    )
    app.config.update(config or {})
    if app.config["HOST_DATABASE_URL"].startswith("sqlite:///"):
        Path(app.config["HOST_DATABASE_URL"].removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(app.config["HOST_DATABASE_URL"])
    metadata.create_all(engine)  # the host's tables only: Beacon's come from `flask intranet init-db`
    app.extensions["host_db"] = engine
    app.register_blueprint(pages)
    app.cli.add_command(host_cli)
    intranet.init_app(app, engine=beacon_engine)
    return app
