"""Who may call each route: the access-control policies of every Beacon route (SECURITY.md C1-C3,
C7), and the organisation ``tests/test_access_matrix.py`` checks them against.

Every rule of ``app.url_map`` must have an entry in :data:`POLICIES`
(``test_every_route_has_a_declared_policy`` fails otherwise), so a new route cannot ship without saying who may call it. Declaring one is a
line (see the README's contributor notes)::

    "intranet_feed.post": reader(),                        # a post the caller may read, else the missing 404
    "intranet_admin.roles_page": Policy("admin"),          # admins; 403 for others, sign-in for nobody
    "intranet_pwa.manifest": Policy(None),                 # anyone
    "intranet_posts_api.approve": desk(publishes),         # the desk's post, with a rule of its own

Callers (:data:`ACTORS`): nobody signed in; an employee in Sales (the posts' audience) and one in
Engineering; a contributor who wrote every post; a comms manager; an admin. Post states
(:data:`POST_STATES`): targeted (live, for Sales), untargeted (live, for Finance only), draft,
scheduled (a day ahead), expired, deleted. Each (caller, state) gets a post of its own, so what an
allowed call changes (a deletion, a publication) never changes another's answer.

Answers:

- ``ok``: past access control: 2xx, a redirect that is not to the sign-in page, or 400/409/413/422
  (the matrix sends an empty body unless the policy gives one; it checks who gets in, not what
  they may write).
- ``sign_in``: 401 on the API, a redirect to the sign-in page elsewhere.
- ``forbidden``: 403.
- ``missing``: 404, and for a post byte-identical to the same caller's 404 for the deleted one (C1).

A refused call writes nothing: the row count of every table (but sessions and rate-limit windows)
is the same before and after the refused calls of a route (C2).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlmodel import Session

from intranet import api_keys, attachments, ratings, targeting
from intranet.db import metadata
from intranet.delivery import rendering
from intranet.directory.planning import Plan
from intranet.journeys import definitions
from intranet.models import Employee, Feedback, Group, GroupOwner, Post, PostTranslation, SyncHeld, SyncRun
from intranet.webhooks import endpoints
from intranet.webhooks.sealing import SecretBox
from tests.conftest import CSRF_META

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
ACTORS = ("anonymous", "targeted", "untargeted", "contributor", "comms", "admin")
POST_STATES = ("targeted", "untargeted", "draft", "scheduled", "expired", "deleted")
#: The roles each caller holds (admins hold every role; comms managers may also write posts).
ROLES: dict[str, set[str]] = {
    "anonymous": set(),
    "targeted": {"employee"},
    "untargeted": {"employee"},
    "contributor": {"employee", "contributor"},
    "comms": {"employee", "contributor", "comms"},
    "admin": {"employee", "contributor", "comms", "admin"},
}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: Tables a refused request may still write: the session row (last seen) and rate-limit windows
#: (refused rating attempts count against the limit, by design).
MAY_CHANGE_WHEN_REFUSED = {"intranet_session", "intranet_rate_window"}

#: (caller, state) -> True (ok), False (the policy's refusal) or an answer ("forbidden", ...).
Allow = Callable[[str, str], "bool | str"]


def anyone(actor: str, state: str) -> bool:
    return True


def nobody(actor: str, state: str) -> bool:
    return False


def reads(actor: str, state: str) -> bool:
    """The one targeting rule: a live post, for the caller's department."""
    return actor == "targeted" and state == "targeted"


def manages(actor: str, state: str) -> bool:
    """The publishing desk: the post's author (the contributor), comms managers and admins."""
    return state != "deleted" and actor in ("contributor", "comms", "admin")


def publishes(actor: str, state: str) -> bool | str:
    """Approving, publishing, unpublishing: the desk, where the author may look but not publish."""
    if not manages(actor, state):
        return False
    return True if actor != "contributor" else "forbidden"


def named_reader_may_read(actor: str, state: str) -> bool:
    """A signed rating link names the targeted employee: it works, for whoever holds it, while they may read the post."""
    return state == "targeted"


def edits(actor: str, state: str) -> bool | str:
    """Changing a post: publishers at any time, its author only until it goes out (then 403)."""
    if not manages(actor, state):
        return False
    return True if actor != "contributor" or state == "draft" else "forbidden"


def exists(actor: str, state: str) -> bool:
    """Comms managers' read models of any post that exists (drafts included: they manage them all)."""
    return state != "deleted"


def reads_or_manages(actor: str, state: str) -> bool:
    return reads(actor, state) or manages(actor, state)


def went_out(actor: str, state: str) -> bool:
    """Dashboards: any post that has a publication time (scheduled, live or expired)."""
    return state in ("targeted", "untargeted", "scheduled", "expired")


def lists_acknowledgements(actor: str, state: str) -> bool:
    """Who acknowledged a must-read: its author and admins (not every comms manager)."""
    return state != "deleted" and actor in ("contributor", "admin")


def owns_group(actor: str, state: str) -> bool | str:
    """A managed group's members: its owner (the contributor) and admins; others get a 403."""
    return True if actor in ("contributor", "admin") else "forbidden"


def answers_feedback(actor: str, state: str) -> bool:
    """Feedback on a post: its author, comms managers and admins; the same 404 for anyone else."""
    return actor in ("contributor", "comms", "admin")


@dataclasses.dataclass(frozen=True)
class Policy:
    """Who may call one route.

    :param role: the least role a caller needs (``employee``, ``contributor``, ``comms``,
        ``admin``), checked first: nobody signed in is sent to sign in, a caller without it gets
        403. ``None``: no sign-in needed (the URL's token, if any, is the credential).
    :param obj: what the URL names, made fresh for each call (see :class:`World`): ``post`` (in
        every state of :data:`POST_STATES`), ``rating_link``, ``attachment``, ``post_version`` (a post
        with a Spanish version), ``feedback``,
        ``open_group``, ``managed_group``, ``person``, ``run``, ``unsubscribe``, ``webhook``, ``journey``,
        ``journey_step``, ``api_key``; ``None``: nothing.
    :param allows: which callers holding the role get in (``False`` means *denied*).
    :param denied: the answer for the others.
    :param args: fixed URL values (a chart key, an action).
    :param query: a query string to add.
    :param body: what a state-changing call sends (JSON on the API, a form elsewhere); empty by
        default. Give a valid one where a view checks its input before the caller's rights.
    :param why: for odd declarations, the reason.
    """

    role: str | None
    obj: str | None = None
    allows: Allow = anyone
    denied: str = "missing"
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    query: str = ""
    body: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    why: str = ""

    def states(self) -> tuple[str, ...]:
        return POST_STATES if self.obj in ("post", "rating_link", "attachment", "post_version") else ("-",)

    def expected(self, actor: str, state: str) -> str:
        if self.role is not None:
            if actor == "anonymous":
                return "sign_in"
            if self.role not in ROLES[actor]:
                return "forbidden"
        answer = self.allows(actor, state)
        if answer is True:
            return "ok"
        return self.denied if answer is False else str(answer)


def reader(**kwargs: Any) -> Policy:
    """A post the caller may read (the targeting rule), else the missing-post 404."""
    return Policy("employee", "post", reads, **kwargs)


def desk(allows: Allow = manages, role: str = "employee", obj: str = "post", **kwargs: Any) -> Policy:
    """A post on the publishing desk: the people who manage it, else the missing-post 404."""
    return Policy(role, obj, allows, **kwargs)


POLICIES: dict[str, Policy] = {
    # Files and the installable app: anyone.
    "intranet.static": Policy(None, args={"filename": "intranet/css/beacon.css"}),
    "static": Policy(None, allows=nobody, args={"filename": "beacon.css"},
                     why="Flask's own static folder (intranet/static) does not exist: Beacon serves /_beacon/static"),
    "intranet_pwa.manifest": Policy(None),
    "intranet_pwa.service_worker": Policy(None),
    "intranet_pwa.offline": Policy(None),
    "intranet_api.openapi": Policy(None),
    # Signing in and out.
    "intranet_auth.sign_in_page": Policy(None),
    "intranet_auth.dev_login_page": Policy(None),
    "intranet_auth.dev_login": Policy(None, body={"email": "targeted@example.test"}),
    "intranet_auth.logout": Policy(None),
    "intranet_entra.start": Policy(None, allows=nobody,
                                   why="Entra ID is not configured in this app: 404 for everyone "
                                       "(the configured flow: tests/test_directory_entra_signin.py)"),
    "intranet_entra.callback": Policy(None),
    "intranet_entra.complete": Policy(None, why="no sign-in flow in the session: a 400 page for everyone"),
    # Signed links from digests: the token is the credential, for the person it names.
    "intranet_ratings.confirm_page": Policy(None, "rating_link", named_reader_may_read),
    "intranet_ratings.confirm": Policy(None, "rating_link", named_reader_may_read),
    "intranet_delivery.unsubscribe_page": Policy(None, "unsubscribe"),
    "intranet_delivery.unsubscribe": Policy(None, "unsubscribe"),
    # A reader's own things: anyone signed in.
    "intranet_feed.index": Policy("employee"),
    "intranet_search.page": Policy("employee", query="?q=post"),
    "intranet_api.search_posts": Policy("employee", query="?q=post"),
    "intranet_api.feed_list": Policy("employee"),
    "intranet_api.me": Policy("employee"),
    "intranet_my_data.download": Policy("employee"),
    "intranet_delivery.preferences_page": Policy("employee"),
    "intranet_delivery.preferences_save": Policy("employee"),
    "intranet_delivery.answer_cadence_notice": Policy("employee"),
    "intranet_delivery_api.get_preferences": Policy("employee"),
    "intranet_delivery_api.put_preferences": Policy("employee"),
    "intranet_delivery_api.digest_schedule": Policy("employee"),
    "intranet_delivery_api.latest_in_app_digest": Policy("employee"),
    "intranet_delivery_api.post_events": Policy("employee"),
    "intranet_feedback.mine": Policy("employee"),
    "intranet_feedback.seen": Policy("employee"),
    "intranet_feedback_api.mine": Policy("employee"),
    "intranet_feedback_api.seen": Policy("employee"),
    "intranet_groups.index": Policy("employee"),
    "intranet_api.group_list": Policy("employee"),
    "intranet_groups.join": Policy("employee", "open_group"),
    "intranet_groups.leave": Policy("employee", "open_group"),
    "intranet_api.group_join": Policy("employee", "open_group"),
    "intranet_api.group_leave": Policy("employee", "open_group"),
    # Reading posts: the targeting rule, and the same 404 for every other reason (C1, C2, C7).
    "intranet_feed.post": reader(),
    "intranet_feed.acknowledge": reader(),
    "intranet_ratings.rate": reader(),
    "intranet_api.post_detail": reader(),
    "intranet_api.post_read": reader(),
    "intranet_api.post_acknowledge": reader(),
    "intranet_ratings_api.rate": reader(),
    "intranet_ratings_api.withdraw": reader(),
    "intranet_publish.attachment": Policy("employee", "attachment", reads_or_manages),
    # The publishing desk: whoever manages the post; the desk itself is for people who write.
    "intranet_publish.index": Policy("contributor"),
    "intranet_publish.new": Policy("contributor"),
    "intranet_publish.create": Policy("contributor", body={"title": "New", "summary": "s", "all_staff": "1"}),
    "intranet_posts_api.create": Policy("contributor", body={"title": "New", "audience": {"all": True}}),
    "intranet_api.audience_preview": Policy("contributor"),
    "intranet_posts_api.manage_list": Policy("employee", why="lists only the posts the caller manages (none for readers)"),
    "intranet_publish.edit": desk(),
    "intranet_publish.save": desk(),
    "intranet_publish.act": desk(args={"action": "submit"}),
    "intranet_publish.preview": desk(),
    "intranet_publish.preview_as": desk(query="?who=T000001"),
    "intranet_publish.upload": desk(),
    "intranet_publish.save_translation": desk(body={"language": "es", "title": "Hola", "summary": "s",
                                                    "body_html": "<p>Hola</p>"}),
    "intranet_publish.remove_translation": desk(args={"language": "es"}),
    # The API's versions: the desk's people, and (as on the desk) an author only until the post goes out.
    "intranet_posts_api.save_version": desk(edits, args={"language": "es"}, body={"title": "Hola",
                                                                                  "body_html": "<p>Hola</p>"}),
    "intranet_posts_api.remove_version": desk(edits, obj="post_version", args={"language": "es"}),
    "intranet_posts_api.manage_detail": desk(),
    "intranet_posts_api.update": desk(edits),
    "intranet_posts_api.delete": desk(edits),
    "intranet_posts_api.upload": desk(edits),
    "intranet_posts_api.remove_attachment": desk(edits, obj="attachment"),
    "intranet_posts_api.submit": desk(edits),
    "intranet_posts_api.request_changes": desk(publishes),
    "intranet_posts_api.approve": desk(publishes),
    "intranet_posts_api.publish": desk(publishes),
    "intranet_posts_api.unpublish": desk(publishes),
    "intranet_acknowledgements.page": desk(lists_acknowledgements),
    "intranet_acknowledgements.export": desk(lists_acknowledgements),
    "intranet_feedback.export": desk(lambda a, s: s != "deleted" and answers_feedback(a, s)),
    # Feedback: the inbox is for people who write posts; one item for its post's author and comms.
    "intranet_feedback.inbox": Policy("contributor"),
    "intranet_feedback_api.inbox": Policy("contributor"),
    "intranet_feedback.thread": Policy("employee", "feedback", answers_feedback),
    "intranet_feedback.reply": Policy("employee", "feedback", answers_feedback),
    "intranet_feedback.answered": Policy("employee", "feedback", answers_feedback),
    "intranet_feedback_api.detail": Policy("employee", "feedback", answers_feedback),
    "intranet_feedback_api.reply": Policy("employee", "feedback", answers_feedback),
    "intranet_feedback_api.answered": Policy("employee", "feedback", answers_feedback),
    # Groups: admins create them; a managed group's owners and admins set its members.
    "intranet_groups.create": Policy("admin"),
    "intranet_api.group_create": Policy("admin"),
    "intranet_groups.members": Policy("employee", "managed_group", owns_group),
    "intranet_groups.set_members": Policy("employee", "managed_group", owns_group),
    "intranet_groups.add_member": Policy("employee", "managed_group", owns_group, body={"employee_id": "T000001"}),
    "intranet_groups.remove_member": Policy("employee", "managed_group", owns_group, body={"employee_id": "T000001"}),
    "intranet_api.group_members": Policy("employee", "managed_group", owns_group, body={"employee_ids": []}),
    # Comms managers: dashboards and the organisation's digest defaults.
    "intranet_dashboards.organisation": Policy("comms"),
    "intranet_dashboards.organisation_csv": Policy("comms", args={"key": "reading-hours"}),
    "intranet_dashboards.post": desk(went_out, role="comms"),
    "intranet_dashboards.post_csv": desk(went_out, role="comms", args={"key": "funnel"}),
    "intranet_analytics_api.post_analytics": desk(exists, role="comms"),
    "intranet_analytics_api.reading_hours": Policy("comms"),
    "intranet_feedback_api.post_reception": desk(exists, role="comms"),
    "intranet_admin.digest_defaults": Policy("comms"),
    "intranet_admin.save_digest_defaults": Policy("comms"),
    "intranet_delivery_api.get_org_defaults": Policy("comms"),
    "intranet_delivery_api.put_org_defaults": Policy("comms"),
    # Admins: people, roles, erasure and the directory.
    "intranet_admin.roles_page": Policy("admin"),
    "intranet_admin.set_roles": Policy("admin", "person"),
    "intranet_admin.erase_page": Policy("admin", "person"),
    "intranet_admin.erase": Policy("admin", "person"),
    "intranet_directory_admin.index": Policy("admin"),
    "intranet_directory_admin.quarantine": Policy("admin"),
    "intranet_directory_admin.unmapped": Policy("admin"),
    "intranet_directory_admin.run": Policy("admin", "run"),
    "intranet_directory_admin.approve": Policy("admin", "run"),
    "intranet_directory_admin.reject": Policy("admin", "run"),
    "intranet_webhooks_admin.index": Policy("admin"),
    "intranet_webhooks_admin.add": Policy("admin"),
    "intranet_webhooks_admin.set_active": Policy("admin", "webhook"),
    "intranet_webhooks_admin.test": Policy("admin", "webhook"),
    "intranet_webhooks_admin.rotate": Policy("admin", "webhook"),
    "intranet_webhooks_admin.remove": Policy("admin", "webhook"),
    # Journeys: comms managers define them (their steps' posts are covered by the targeting tests).
    "intranet_journeys.index": Policy("comms"),
    "intranet_journeys.new": Policy("comms"),
    "intranet_journeys.create": Policy("comms"),
    "intranet_journeys.detail": Policy("comms", "journey"),
    "intranet_journeys.update": Policy("comms", "journey"),
    "intranet_journeys.set_status": Policy("comms", "journey"),
    "intranet_journeys.add_step": Policy("comms", "journey"),
    "intranet_journeys.timeline": Policy("comms", "journey"),
    "intranet_journeys.step_page": Policy("comms", "journey_step"),
    "intranet_journeys.update_step": Policy("comms", "journey_step"),
    "intranet_api_keys_admin.index": Policy("admin"),
    "intranet_api_keys_admin.create": Policy("admin"),
    "intranet_api_keys_admin.revoke": Policy("admin", "api_key"),
    # Embedding (tests/test_embed.py covers embed tokens and the frame session; here, cookie sessions).
    "intranet_embed.feed_page": Policy(None, why="signed out, it explains how to sign in inside the frame"),
    "intranet_embed.hand_off": Policy("employee"),
    "intranet_embed.acknowledge": reader(),
    "intranet_embed_api.widget_feed": Policy("employee"),
    "intranet_embed_api.widget_words": Policy(None, why="the widget's words, signed in or not (in the browser's language)"),
    "intranet_embed_api.start_session": Policy(None, allows=lambda actor, state: "sign_in",
                                               why="without an embed token (Authorization: Bearer): 401 for everyone"),
    # Load balancers: no session, no sign-in.
    "intranet_health.healthz": Policy(None),
    "intranet_health.readyz": Policy(None),
}


# --------------------------------------------------------------------------------------------
# The organisation the matrix runs against
# --------------------------------------------------------------------------------------------


class World:
    """The callers, and a fresh object of each kind for every (caller, state) on request."""

    def __init__(self, app: Any, db: Session, now: dt.datetime) -> None:
        self.app, self.db, self.now = app, db, now
        self.secret = app.extensions["intranet"].secret_key
        self.upload_dir = Path(app.extensions["intranet"].settings.uploads.upload_dir)
        self.people: dict[str, Employee] = {}
        for actor, attrs in {"targeted": dict(department="Sales"), "untargeted": dict(department="Engineering"),
                             "contributor": dict(department="Comms", is_contributor=True),
                             "comms": dict(department="Comms", is_comms=True),
                             "admin": dict(department="Comms", is_admin=True)}.items():
            self.people[actor] = self._employee(actor, **attrs)
        self.db.commit()
        self._made = 0
        #: Posts to delete once every object exists (SQLite hands a deleted last id out again).
        self.deleted: list[int] = []

    def delete_posts(self) -> None:
        """Delete the posts of state ``deleted``, after a last post that keeps their ids from coming
        back, and commit what this route's calls need."""
        self.post("targeted")
        self.db.execute(delete(Post).where(Post.id.in_(self.deleted)))  # type: ignore[attr-defined]
        self.db.commit()
        self.deleted.clear()

    def _employee(self, name: str, **attrs: Any) -> Employee:
        employee = Employee(employee_id=f"T{len(self.db.exec(select(Employee.id)).all()) + 1:06d}",
                            email=f"{name}@example.test", display_name=name.title(), region="EMEA", country="DE",
                            level=3, timezone="Europe/Berlin", language="en", created_at=self.now,
                            updated_at=self.now, **attrs)
        self.db.add(employee)
        self.db.flush()
        return employee

    def post(self, state: str) -> Post:
        now, hour = self.now, dt.timedelta(hours=1)
        audience = {"segments": [{"departments": ["Finance" if state == "untargeted" else "Sales"]}]}
        values: dict[str, Any] = dict(status="published", publish_at=now - hour, published_at=now - hour)
        if state == "draft":
            values = dict(status="draft", publish_at=None, published_at=None)
        elif state == "scheduled":
            values = dict(status="scheduled", publish_at=now + 24 * hour, published_at=now + 24 * hour)
        elif state == "expired":
            values.update(published_at=now - 48 * hour, expires_at=now - 24 * hour)
        post = Post(title=f"Post {state}", summary="Summary", body_html="<p>Body</p>", body_text="Body",
                    topic="News", must_read=True, author_pk=self.people["contributor"].id, **values)
        self.db.add(post)
        self.db.flush()
        targeting.store_audience(self.db, post, targeting.parse_audience(audience))
        self.db.flush()
        return post

    def args(self, policy: Policy, actor: str, state: str) -> dict[str, Any]:
        """The URL values naming a fresh object for one call."""
        values = dict(policy.args)
        kind = policy.obj
        self._made += 1
        if kind in ("post", "rating_link", "attachment", "post_version"):
            post = self.post(state)
            values["post_id"] = post.id
            if kind == "post_version":
                self.db.add(PostTranslation(post_id=post.id, language="es", title="Hola", created_at=self.now,
                                            updated_at=self.now))
                self.db.flush()
            if kind == "rating_link":
                link = ratings.RatingLink(self.people["targeted"].employee_id, post.id, stars=4)
                values["token"] = ratings.link_token(self.secret, link)
            if kind == "attachment":
                stored = attachments.store(self.db, data=PNG, filename="a.png", post=post,
                                           uploader=self.people["contributor"], upload_dir=self.upload_dir,
                                           now=self.now)
                self.db.flush()
                values["attachment_id"] = stored.id
            if state == "deleted":
                self.deleted.append(post.id)
        elif kind == "feedback":
            post = self.post("targeted")
            row = Feedback(employee_pk=self.people["targeted"].id, post_id=post.id, comment="Why?",
                           received_at=self.now)
            self.db.add(row)
            self.db.flush()
            values["feedback_id"] = row.id
        elif kind in ("open_group", "managed_group"):
            group = Group(key=f"group-{self._made}", name=f"Group {self._made}", kind=kind.split("_")[0])
            self.db.add(group)
            self.db.flush()
            if kind == "managed_group":
                self.db.add(GroupOwner(group_id=group.id, employee_pk=self.people["contributor"].id))
            self.db.flush()
            values["key"] = group.key
        elif kind == "person":
            values["employee_id"] = self._employee(f"person{self._made}", department="Sales").employee_id
        elif kind == "unsubscribe":
            person = self._employee(f"reader{self._made}", department="Sales")
            values["token"] = rendering.unsubscribe_token(self.secret, person.employee_id)
        elif kind == "run":
            run = SyncRun(source="hr", mode="full", status="held", started_at=self.now - dt.timedelta(hours=1))
            self.db.add(run)
            self.db.flush()
            self.db.add(SyncHeld(run_id=run.id, reason="Would deactivate too many people",
                                 plan=Plan(source="hr", mode="full").to_json()))
            self.db.flush()
            values["run_id"] = run.id
        elif kind == "webhook":
            data = endpoints.EndpointIn(url="https://hooks.example.com/beacon", event_types=["post.published"])
            created = endpoints.create(self.db, data, actor=None, now=self.now, box=SecretBox(), allow_private=True)
            self.db.flush()
            values["endpoint_id"] = created.endpoint.id
        elif kind in ("journey", "journey_step"):
            journey = definitions.create_journey(self.db, definitions.JourneyIn(name=f"Journey {self._made}",
                                                                                trigger="hire"),
                                                 author=self.people["comms"], now=self.now)
            values["journey_id"] = journey.id
            if kind == "journey_step":
                step = definitions.add_step(self.db, journey, definitions.StepIn(key="welcome", offset_days=0,
                                                                                 title="Welcome"),
                                            author=self.people["comms"], now=self.now)
                values["step_id"] = step.id
            self.db.flush()
        elif kind == "api_key":
            key, _ = api_keys.create(self.db, api_keys.ApiKeyCreate(name=f"Key {self._made}", scopes=["feed:read"]),
                                     by=None, now=self.now)
            values["key_id"] = key.id
        elif kind is not None:
            raise AssertionError(f"unknown object kind {kind!r}")
        return values

    def client(self, actor: str) -> tuple[Any, str | None]:
        """A test client over HTTPS signed in as *actor* (through the development sign-in), and its CSRF token."""
        client = self.app.test_client()
        client.environ_base.update(HTTP_REFERER="https://localhost/")
        page = client.get("/auth/dev-login", base_url="https://localhost").get_data(as_text=True)
        if actor == "anonymous":  # a session with a CSRF token: refused for being nobody, not for the token
            return client, CSRF_META.search(page).group(1)  # type: ignore[union-attr]
        token = CSRF_META.search(page).group(1)  # type: ignore[union-attr]
        signed_in = client.post("/auth/dev-login", base_url="https://localhost",
                                data={"email": self.people[actor].email, "csrf_token": token})
        assert signed_in.status_code == 302, signed_in.get_data(as_text=True)[:300]
        page = client.get("/offline", base_url="https://localhost").get_data(as_text=True)
        return client, CSRF_META.search(page).group(1)  # type: ignore[union-attr]

    def row_counts(self) -> dict[str, int]:
        """Rows per table (one statement: this runs twice per route)."""
        tables = [t for t in metadata.sorted_tables if t.name not in MAY_CHANGE_WHEN_REFUSED]
        counts = select(*(select(func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables))
        self.db.rollback()
        return dict(self.db.execute(counts).one()._mapping)


def headers_of(response: Any) -> list[tuple[str, str]]:
    """The headers to compare between two 404s: all but the request's own id."""
    return sorted((k, v) for k, v in response.headers.items() if k != "X-Request-ID")


def answer_of(response: Any) -> str:
    status = response.status_code
    location = response.headers.get("Location", "")
    if status == 401 or (status in (302, 303) and "/auth/sign-in?next=" in location):
        return "sign_in"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "missing"
    if status == 400 and b'"csrf"' in response.data:
        return "csrf"
    if status < 500:
        return "ok"
    return f"error {status}"
