"""Beacon inside any web page: who may frame it, who may call it from script, and the embed tokens."""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import jwt
import pytest

from intranet import embed_tokens
from intranet.errors import ConfigurationError
from intranet.models import PostState
from intranet.settings import Settings

HOST = "https://intranet.example.com"
OTHER = "https://evil.example.net"
HOST_SECRET = secrets.token_hex(32)
EMBED = pytest.mark.settings(INTRANET_EMBED_ORIGINS=f"{HOST}, https://contoso.sharepoint.com",
                             INTRANET_EMBED_TOKEN_SECRET=HOST_SECRET)


def token_for(employee: Any, clock: Any, **overrides: Any) -> str:
    """A host backend's token for *employee* (email as subject), as the README tells hosts to mint it."""
    values: dict[str, Any] = {"issuer": "intranet", "audience": "beacon", "subject": employee.email,
                              "now": clock.now, "lifetime": dt.timedelta(minutes=5)}
    secret = overrides.pop("secret", HOST_SECRET)
    values.update(overrides)
    return embed_tokens.mint(secret, **values)


def bearer(token: str, origin: str | None = HOST) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if origin:
        headers["Origin"] = origin
    return headers


# -- frame-ancestors ----------------------------------------------------------------------------


@EMBED
def test_only_the_embed_page_may_be_framed_and_only_by_allowed_origins(app, make_employee, client_for):
    """The iframe page names the allowed host origins; every other page keeps frame-ancestors 'none'."""
    client = client_for(make_employee())
    embed = client.get("/embed/feed")
    assert embed.status_code == 200
    csp = embed.headers["Content-Security-Policy"]
    assert f"frame-ancestors {HOST} https://contoso.sharepoint.com" in csp
    assert "X-Frame-Options" not in embed.headers
    for path in ("/", "/search?q=x", "/preferences", "/api/v1/embed/feed"):
        response = client.get(path)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert response.headers["X-Frame-Options"] == "DENY", path


def test_without_embed_origins_the_embed_page_may_not_be_framed(app, make_employee, client_for):
    """No INTRANET_EMBED_ORIGINS: the iframe page is as unframeable as the rest."""
    response = client_for(make_employee()).get("/embed/feed")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


@EMBED
def test_signed_out_embed_page_offers_sign_in_without_any_token_in_its_address(app):
    """Signed out, the frame says how to sign in; the hand-off and exchange addresses carry no token."""
    client = app.test_client()
    page = client.get("/embed/feed").get_data(as_text=True)
    assert "data-embed-connect" in page and "Sign in" in page
    assert 'data-session-url="/api/v1/embed/session"' in page and 'data-hand-off-url="/embed/hand-off"' in page
    assert "token=" not in page


@EMBED
def test_embed_page_lists_only_the_posts_targeted_at_the_person(app, make_employee, make_post, client_for):
    """The iframe page is the feed service's: a post for another department is not there."""
    me = make_employee(department="Sales")
    make_post({"segments": [{"departments": ["Sales"]}]}, title="Sales kickoff", must_read=True)
    make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")
    page = client_for(me).get("/embed/feed").get_data(as_text=True)
    assert "Sales kickoff" in page and "Finance only" not in page
    assert "I have read this" in page  # the must-read banner


# -- CORS -----------------------------------------------------------------------------------------


@EMBED
def test_preflight_from_an_allowed_origin_is_answered(app):
    """The widget's preflight for a rating gets the methods, the headers and credentials for its origin."""
    response = app.test_client().options("/api/v1/posts/1/rating", headers={
        "Origin": HOST, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == HOST
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "PUT" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Origin" in response.headers["Vary"]


@EMBED
def test_preflight_from_another_origin_gets_no_cors_headers(app):
    """A page not in INTRANET_EMBED_ORIGINS learns nothing: no Access-Control-* at all."""
    response = app.test_client().options("/api/v1/posts/1/rating", headers={
        "Origin": OTHER, "Access-Control-Request-Method": "PUT"})
    assert not [name for name in response.headers.keys() if name.startswith("Access-Control-")]
    assert "Origin" in response.headers["Vary"]


@EMBED
def test_only_the_widgets_calls_answer_cors(app, make_employee, client_for):
    """Other API routes (here: who am I) send no CORS headers even to an allowed origin."""
    client = client_for(make_employee())
    response = client.get("/api/v1/me", headers={"Origin": HOST})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers
    response = client.get("/api/v1/embed/feed", headers={"Origin": HOST})
    assert response.headers["Access-Control-Allow-Origin"] == HOST


def test_without_embed_origins_no_origin_is_allowed(app):
    """The default allowlist is empty."""
    response = app.test_client().options("/api/v1/embed/feed", headers={
        "Origin": HOST, "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in response.headers


# -- embed tokens ---------------------------------------------------------------------------------


@EMBED
def test_a_host_token_reads_the_persons_feed(app, make_employee, make_post, clock):
    """With a valid token and no cookie, the widget's feed is the token's person's, targeted posts only."""
    me = make_employee(department="Sales")
    make_post({"segments": [{"departments": ["Sales"]}]}, title="Sales kickoff", rating_style="thumbs")
    make_post({"segments": [{"departments": ["Finance"]}]}, title="Finance only")
    response = app.test_client().get("/api/v1/embed/feed", headers=bearer(token_for(me, clock)))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [i["title"] for i in body["items"]] == ["Sales kickoff"]
    assert body["items"][0]["rating_style"] == "thumbs" and body["items"][0]["my_rating"] is None
    assert body["items"][0]["url"].endswith(f"/posts/{body['items'][0]['id']}")
    assert body["viewer"] == me.display_name and body["csrf_token"] is None
    assert response.headers["Access-Control-Allow-Origin"] == HOST


@EMBED
def test_token_writes_need_no_csrf_token(app, make_employee, make_post, clock, db):
    """A write authenticated by the token alone (no cookie) needs no CSRF token: rating and acknowledging."""
    me = make_employee()
    post = make_post(title="Safety", must_read=True)
    client = app.test_client()
    rated = client.put(f"/api/v1/posts/{post.id}/rating", json={"stars": 4}, headers=bearer(token_for(me, clock)))
    assert rated.status_code == 200 and rated.get_json()["stars"] == 4
    acked = client.post(f"/api/v1/posts/{post.id}/acknowledge", json={}, headers=bearer(token_for(me, clock)))
    assert acked.status_code == 200
    assert db.get(PostState, (me.id, post.id)).acknowledged_at is not None


@EMBED
def test_cookie_writes_from_the_widget_still_need_the_csrf_token(app, make_employee, make_post, client_for):
    """Cookie-authenticated calls keep CSRF: without the header the rating is refused, with it saved."""
    me = make_employee()
    post = make_post()
    client = client_for(me)
    refused = client.put(f"/api/v1/posts/{post.id}/rating", json={"stars": 3}, headers={"Origin": HOST})
    assert refused.status_code == 400
    feed = client.get("/api/v1/embed/feed", headers={"Origin": HOST}).get_json()
    assert feed["csrf_token"]
    saved = client.put(f"/api/v1/posts/{post.id}/rating", json={"stars": 3},
                       headers={"Origin": HOST, "X-CSRFToken": feed["csrf_token"], "Referer": f"{HOST}/home"})
    assert saved.status_code == 200


@EMBED
def test_a_token_is_not_cookie_authentication(app, make_employee, make_post, client_for, clock):
    """A refused token is a 401 even with a signed-in cookie alongside: the header decides alone."""
    me = make_employee()
    client = client_for(me)
    response = client.get("/api/v1/embed/feed", headers=bearer(token_for(me, clock, secret="x" * 40)))
    assert response.status_code == 401


@EMBED
def test_a_token_opens_only_the_widgets_calls(app, make_employee, clock):
    """A host's token is no key to the rest of Beacon: the same token on another API route is not sign-in."""
    me = make_employee(is_admin=True)
    response = app.test_client().get("/api/v1/me", headers=bearer(token_for(me, clock)))
    assert response.status_code == 401


@EMBED
def test_expired_token_is_refused_with_a_clear_401(app, make_employee, clock):
    me = make_employee()
    token = token_for(me, clock)
    clock.advance(minutes=5, seconds=31)  # past exp and the 30 s leeway
    response = app.test_client().get("/api/v1/embed/feed", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_expired"
    assert "expired" in response.get_json()["error"]["message"]
    assert response.headers["Access-Control-Allow-Origin"] == HOST  # the widget can read why


@EMBED
def test_clock_skew_within_the_leeway_is_tolerated(app, make_employee, clock):
    me = make_employee()
    token = token_for(me, clock)
    clock.advance(minutes=5, seconds=20)
    assert app.test_client().get("/api/v1/embed/feed", headers=bearer(token)).status_code == 200


@EMBED
@pytest.mark.parametrize("change, says", [
    ("signature", "signature does not match"),
    ("payload", "signature does not match"),
    ("secret", "signature does not match"),
    ("audience", "another audience"),
    ("issuer", "issuer is not trusted"),
    ("lifetime", "lives too long"),
    ("future", "issued in the future"),
    ("none", "must be signed with HS256"),
    ("no-jti", "'jti'"),
    ("garbage", "is not a JWT"),
])
def test_tampered_or_wrong_tokens_are_refused(app, make_employee, clock, change, says):
    """Each way a token can be wrong is a 401 whose message says which."""
    me = make_employee()
    token = token_for(me, clock)
    head, payload, signature = token.split(".")
    if change == "signature":
        token = f"{head}.{payload}.{signature[:-4]}AAAA"
    elif change == "payload":
        claims = jwt.decode(token, options={"verify_signature": False})
        forged = jwt.encode({**claims, "sub": "someone.else@example.test"}, "x" * 40, algorithm="HS256")
        token = f"{head}.{forged.split('.')[1]}.{signature}"
    elif change == "secret":
        token = token_for(me, clock, secret="another-secret-" + "x" * 40)
    elif change == "audience":
        token = token_for(me, clock, audience="someone-else")
    elif change == "issuer":
        token = token_for(me, clock, issuer="elsewhere")
    elif change == "lifetime":
        token = token_for(me, clock, lifetime=dt.timedelta(hours=1))
    elif change == "future":
        token = token_for(me, clock, now=clock.now + dt.timedelta(minutes=3))
    elif change == "none":
        claims = jwt.decode(token, options={"verify_signature": False})
        token = jwt.encode(claims, None, algorithm="none")  # "header.payload." with an empty signature
    elif change == "no-jti":
        claims = jwt.decode(token, options={"verify_signature": False})
        del claims["jti"]
        token = jwt.encode(claims, HOST_SECRET, algorithm="HS256")
    elif change == "garbage":
        token = "not.a.jwt"
    response = app.test_client().get("/api/v1/embed/feed", headers=bearer(token))
    assert response.status_code == 401, change
    assert says in response.get_json()["error"]["message"], response.get_json()


@EMBED
def test_a_token_for_someone_who_left_is_refused(app, make_employee, clock):
    me = make_employee(active=False)
    response = app.test_client().get("/api/v1/embed/feed", headers=bearer(token_for(me, clock)))
    assert response.status_code == 401 and "not one active person" in response.get_json()["error"]["message"]


def test_without_a_shared_secret_hosts_cannot_mint_tokens(app, make_employee, clock):
    """INTRANET_EMBED_TOKEN_SECRET unset: a host token (whatever secret signed it) is refused."""
    me = make_employee()
    response = app.test_client().get("/api/v1/embed/feed", headers=bearer(token_for(me, clock), origin=None))
    assert response.status_code == 401


# -- the iframe page's session ---------------------------------------------------------------------


@EMBED
def test_token_exchange_makes_a_third_party_frame_session_for_the_embed_views_only(app, make_employee, make_post,
                                                                                   clock):
    """The exchanged session's cookie is SameSite=None; Secure; Partitioned and opens the embed page only."""
    me = make_employee()
    make_post(title="Hello from the frame")
    client = app.test_client()
    response = client.post("/api/v1/embed/session", headers=bearer(token_for(me, clock), origin=None))
    assert response.status_code == 204
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-beacon-embed=")
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/"):
        assert attribute in cookie, attribute
    assert "Hello from the frame" in client.get("/embed/feed").get_data(as_text=True)
    assert client.get("/preferences").status_code in (302, 401)  # not signed in anywhere else
    assert client.get("/api/v1/me").status_code == 401


@EMBED
def test_a_token_is_exchanged_once(app, make_employee, clock):
    me = make_employee()
    token = token_for(me, clock)
    client = app.test_client()
    assert client.post("/api/v1/embed/session", headers=bearer(token, origin=None)).status_code == 204
    again = app.test_client().post("/api/v1/embed/session", headers=bearer(token, origin=None))
    assert again.status_code == 401 and again.get_json()["error"]["code"] == "token_replayed"


@EMBED
def test_exchange_without_a_token_is_refused(app):
    response = app.test_client().post("/api/v1/embed/session")
    assert response.status_code == 401 and "Authorization: Bearer" in response.get_json()["error"]["message"]


@EMBED
def test_hand_off_gives_a_signed_in_person_a_one_minute_token_for_their_frame(app, make_employee, client_for, clock):
    """After signing in to Beacon in its own window, the hand-off page carries a token Beacon accepts."""
    import re

    me = make_employee()
    response = client_for(me).get("/embed/hand-off")
    assert response.status_code == 200
    assert response.headers["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    token = re.search(r'data-token="([^"]+)"', response.get_data(as_text=True)).group(1)
    keys = embed_tokens.Keys.of(app.extensions["intranet"].settings.embed, app.extensions["intranet"].secret_key)
    claims = embed_tokens.verify(token, keys, now=clock.now)
    assert claims.from_beacon and claims.subject == me.email
    assert claims.expires_at - claims.issued_at == dt.timedelta(minutes=1)
    assert app.test_client().post("/api/v1/embed/session", headers=bearer(token, origin=None)).status_code == 204


@EMBED
def test_a_host_secret_cannot_mint_beacons_own_hand_off_tokens(app, make_employee, clock):
    """Beacon's hand-off issuer is checked with Beacon's own key, never the host's secret."""
    me = make_employee()
    token = token_for(me, clock, issuer=embed_tokens.BEACON_ISSUER)
    assert app.test_client().get("/api/v1/embed/feed", headers=bearer(token)).status_code == 401


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("origins, says", [
    ("https://intranet.example.com/home", "not an origin"),
    ("http://intranet.example.com", "not HTTPS"),
    ("intranet.example.com", "not an origin"),
])
def test_embed_origins_must_be_https_origins(origins, says):
    with pytest.raises(ConfigurationError, match=says):
        Settings.from_config({"INTRANET_EMBED_ORIGINS": origins})


def test_embed_settings_parse_lists_and_refuse_short_secrets():
    settings = Settings.from_config({"INTRANET_EMBED_ORIGINS": "https://A.example.com https://b.example.com:8443, "
                                                               "http://localhost:8000"})
    assert settings.embed.origins == ("https://a.example.com", "https://b.example.com:8443", "http://localhost:8000")
    with pytest.raises(ConfigurationError, match="32"):
        Settings.from_config({"INTRANET_EMBED_TOKEN_SECRET": "short"})
    with pytest.raises(ConfigurationError, match="INTRANET_EMBED_TOKEN_MAX_SECONDS"):
        Settings.from_config({"INTRANET_EMBED_TOKEN_MAX_SECONDS": "3600"})


@EMBED
def test_embed_page_speaks_the_persons_language(app, make_employee, make_post, client_for):
    """The iframe page follows the viewer's language like Beacon's own pages."""
    make_post(title="Hola", must_read=True)
    page = client_for(make_employee(language="es")).get("/embed/feed").get_data(as_text=True)
    assert '<html lang="es"' in page and "Tus noticias" in page and "Lectura obligatoria" in page
