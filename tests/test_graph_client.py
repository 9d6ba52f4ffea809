"""The Graph delta client and Entra sign-in, through real msal and requests, against the HTTPS fake."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from intranet.directory import graph
from intranet.directory.graph import (
    DeltaExpired,
    DeltaPage,
    GraphAuthError,
    GraphClient,
    GraphForbidden,
    GraphSettings,
    GraphThrottled,
    SignInRefused,
    begin_sign_in,
    finish_sign_in,
)
from intranet.errors import ConfigurationError
from tests.fakes.entra_graph import FakeEntraGraph, FakeEntraServer, follow_sign_in, routed_config, routed_real_hosts

REDIRECT_URI = "https://intranet.test/auth/callback"


class Sleeps(list[float]):
    """Stands in for ``time.sleep`` and remembers every requested wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def entra(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEntraServer]:
    monkeypatch.delenv("MSAL_FORCE_REGION", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with FakeEntraServer() as server:
        # requests lets this variable override verify=, for msal's session too.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle_path)
        yield server
    graph.clear_app_cache()


@pytest.fixture
def fake(entra: FakeEntraServer) -> FakeEntraGraph:
    return entra.fake


@pytest.fixture
def make_settings(entra: FakeEntraServer) -> Any:
    def make(**overrides: Any) -> GraphSettings:
        config = {**entra.config(), "INTRANET_GRAPH_PAGE_SIZE": 2, **overrides}
        return GraphSettings.from_config(config)

    return make


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(make_settings: Any, sleeps: Sleeps) -> Iterator[Any]:
    sessions: list[requests.Session] = []

    def make(**overrides: Any) -> GraphClient:
        sessions.append(requests.Session())
        return GraphClient(make_settings(**overrides), session=sessions[-1], sleep=sleeps)

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def client(make_client: Any) -> GraphClient:
    return make_client()


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def run_round(client: GraphClient, delta_link: str | None = None) -> list[DeltaPage]:
    return list(client.iter_delta(delta_link))


def users_of(pages: list[DeltaPage]) -> list[dict[str, Any]]:
    return [user for page in pages for user in page.users]


# ---------------------------------------------------------------- paging


def test_full_round_follows_next_links_until_delta_link(fake: FakeEntraGraph, client: GraphClient) -> None:
    """A full round walks every nextLink and ends on the page with the deltaLink."""
    ids = {fake.add_user() for _ in range(5)}
    pages = run_round(client)
    assert len(pages) == 3
    assert all(page.next_link and not page.delta_link for page in pages[:-1])
    assert pages[-1].delta_link and not pages[-1].next_link
    assert {user["id"] for user in users_of(pages)} == ids


def test_empty_pages_are_followed(fake: FakeEntraGraph, client: GraphClient) -> None:
    """An empty page with a nextLink does not end the round."""
    ids = {fake.add_user() for _ in range(6)}
    fake.empty_page_every = 2
    pages = run_round(client)
    assert any(not page.users and page.next_link for page in pages)
    assert {user["id"] for user in users_of(pages)} == ids


def test_first_request_selects_properties_and_asks_for_low_priority(fake: FakeEntraGraph, client: GraphClient) -> None:
    """The first request carries the explicit $select, the page size and low throttle priority."""
    fake.add_user()
    run_round(client)
    first = next(call for call in fake.calls if call.path == "/v1.0/users/delta")
    assert set(first.query["$select"].split(",")) >= {"manager", "employeeOrgData", "onPremisesExtensionAttributes"}
    assert first.headers["Prefer"] == "odata.maxpagesize=2"
    assert first.headers["X-Ms-Throttle-Priority"] == "Low"


def test_incremental_round_returns_only_changed_users(fake: FakeEntraGraph, client: GraphClient) -> None:
    """After the deltaLink, the next round reports just what changed."""
    adele = fake.add_user(displayName="Adele Vance", department="Sales")
    fake.add_user(displayName="Bob")
    delta_link = run_round(client)[-1].delta_link
    fake.update_user(adele, department="Marketing")
    changed = users_of(run_round(client, delta_link))
    assert [(user["id"], user["department"]) for user in changed] == [(adele, "Marketing")]


def test_minimal_round_carries_changed_properties_with_null_for_cleared(
    fake: FakeEntraGraph, make_client: Any
) -> None:
    """With return=minimal only changed properties come back, and null means cleared."""
    client = make_client(INTRANET_GRAPH_RETURN_MINIMAL=True)
    adele = fake.add_user(displayName="Adele Vance", department="Sales", jobTitle="Retail Manager")
    delta_link = run_round(client)[-1].delta_link
    fake.update_user(adele, department="Marketing", jobTitle=None)
    assert users_of(run_round(client, delta_link)) == [{"id": adele, "department": "Marketing", "jobTitle": None}]


def test_removed_users_carry_their_reason(fake: FakeEntraGraph, client: GraphClient) -> None:
    """Soft-deleted users come back as @removed changed, hard-deleted ones as deleted."""
    soft, hard = fake.add_user(), fake.add_user()
    delta_link = run_round(client)[-1].delta_link
    fake.remove_user(soft, "changed")
    fake.remove_user(hard, "deleted")
    removed = {user["id"]: user["@removed"]["reason"] for user in users_of(run_round(client, delta_link))}
    assert removed == {soft: "changed", hard: "deleted"}


def test_manager_changes_arrive_as_manager_delta(fake: FakeEntraGraph, client: GraphClient) -> None:
    """Setting and clearing a manager surfaces as manager@delta, the removal annotated."""
    boss = fake.add_user(displayName="Boss")
    adele = fake.add_user(displayName="Adele", manager=boss)
    first = {user["id"]: user for user in users_of(run_round(client))}
    assert first[adele]["manager@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": boss}]
    delta_link = run_round(client)[-1].delta_link
    fake.update_user(adele, manager=None)
    (changed,) = users_of(run_round(client, delta_link))
    assert changed["manager@delta"] == [{"id": boss, "@removed": {"reason": "deleted"}}]


def test_replayed_user_is_delivered_twice(fake: FakeEntraGraph, client: GraphClient) -> None:
    """A replay delivers the same user again in a later page of the same round."""
    adele = fake.add_user()
    fake.add_user()
    fake.add_user()
    fake.replay(adele)
    pages = run_round(client)
    assert [page_index for page_index, page in enumerate(pages) for user in page.users if user["id"] == adele] == [0, 1]


# ---------------------------------------------------------------- retries


def test_retry_after_is_honoured(fake: FakeEntraGraph, client: GraphClient, sleeps: Sleeps) -> None:
    """A 429 with Retry-After waits exactly that long, then the round completes."""
    fake.add_user()
    fake.inject(429, times=2, retry_after=7)
    assert run_round(client)[-1].delta_link
    assert sleeps == [7.0, 7.0]


def test_backoff_without_retry_after_uses_bounded_full_jitter(
    fake: FakeEntraGraph, make_client: Any, sleeps: Sleeps
) -> None:
    """A 503 without Retry-After waits a random time within a doubling ceiling."""
    client = make_client(INTRANET_GRAPH_BASE_BACKOFF_S=1.0)
    fake.add_user()
    fake.inject(503, times=3)
    run_round(client)
    assert len(sleeps) == 3
    assert all(0.0 <= wait <= ceiling for wait, ceiling in zip(sleeps, [1.0, 2.0, 4.0]))


def test_running_out_of_attempts_raises_graph_throttled(
    fake: FakeEntraGraph, make_client: Any, sleeps: Sleeps
) -> None:
    """After max_attempts failures the client gives up with GraphThrottled."""
    client = make_client(INTRANET_GRAPH_MAX_ATTEMPTS=3)
    fake.inject(503, times=10, retry_after=1)
    with pytest.raises(GraphThrottled) as caught:
        run_round(client)
    assert sleeps == [1.0, 1.0]
    assert caught.value.status == 503 and caught.value.request_id


def test_total_wait_is_bounded_by_the_budget(fake: FakeEntraGraph, make_client: Any, sleeps: Sleeps) -> None:
    """Waits stop before they would exceed max_total_wait_s for the run."""
    client = make_client(INTRANET_GRAPH_MAX_TOTAL_WAIT_S=10)
    fake.inject(429, times=5, retry_after=4)
    with pytest.raises(GraphThrottled, match="MAX_TOTAL_WAIT_S"):
        run_round(client)
    assert sleeps == [4.0, 4.0]


def test_retry_after_beyond_the_budget_gives_up_without_sleeping(
    fake: FakeEntraGraph, make_client: Any, sleeps: Sleeps
) -> None:
    """A Retry-After longer than the remaining budget ends the run at once."""
    client = make_client(INTRANET_GRAPH_MAX_TOTAL_WAIT_S=5)
    fake.inject(429, retry_after=60)
    with pytest.raises(GraphThrottled) as caught:
        run_round(client)
    assert sleeps == []
    assert caught.value.retry_after == 60.0


def test_throttling_mid_round_raises_after_earlier_pages_were_yielded(
    fake: FakeEntraGraph, make_client: Any
) -> None:
    """Pages already yielded carry no deltaLink when a later page runs out of budget."""
    client = make_client(INTRANET_GRAPH_MAX_ATTEMPTS=1)
    for _ in range(4):
        fake.add_user()
    pages = client.iter_delta(None)
    first = next(pages)
    fake.inject(503)
    with pytest.raises(GraphThrottled):
        next(pages)
    assert first.delta_link is None


# ---------------------------------------------------------------- auth and errors


def test_one_token_serves_many_pages(fake: FakeEntraGraph, client: GraphClient) -> None:
    """msal's cache supplies the token for every page after the first."""
    for _ in range(10):
        fake.add_user()
    assert len(run_round(client)) == 5
    assert fake.token_requests == 1


def test_401_purges_the_cached_token_and_retries_once(fake: FakeEntraGraph, client: GraphClient) -> None:
    """A revoked token is dropped from msal's cache, a new one fetched, the request retried."""
    fake.add_user()
    delta_link = run_round(client)[-1].delta_link
    fake.revoke_tokens()
    assert run_round(client, delta_link)[-1].delta_link
    assert fake.token_requests == 2


def test_second_401_raises_graph_auth_error(fake: FakeEntraGraph, client: GraphClient) -> None:
    """Graph rejecting a freshly acquired token too is an auth error, not a loop."""
    fake.inject(401, times=2)
    with pytest.raises(GraphAuthError) as caught:
        run_round(client)
    assert caught.value.status == 401
    assert fake.count("/v1.0/users/delta") == 2


def test_403_fails_fast_naming_the_missing_permission(
    fake: FakeEntraGraph, client: GraphClient, sleeps: Sleeps
) -> None:
    """Without User.Read.All the client stops at once and says which permission to grant."""
    fake.app_roles = []
    with pytest.raises(GraphForbidden, match=r"User\.Read\.All") as caught:
        run_round(client)
    assert caught.value.permission == "User.Read.All"
    assert sleeps == [] and fake.count("/v1.0/users/delta") == 1


def test_errors_carry_graph_request_ids(fake: FakeEntraGraph, client: GraphClient) -> None:
    """A Graph error exposes request-id and client-request-id, also in its message."""
    fake.inject(404)
    with pytest.raises(graph.GraphError) as caught:
        run_round(client)
    error = caught.value
    assert uuid.UUID(error.request_id or "") and uuid.UUID(error.client_request_id or "")
    assert error.request_id in str(error)


def test_expired_delta_token_raises_delta_expired(fake: FakeEntraGraph, client: GraphClient) -> None:
    """syncStateNotFound on a deltaLink asks for a full resync."""
    fake.add_user()
    delta_link = run_round(client)[-1].delta_link
    fake.expire_delta_tokens()
    with pytest.raises(DeltaExpired) as caught:
        run_round(client, delta_link)
    assert caught.value.code == "syncStateNotFound"


def test_gone_raises_delta_expired(fake: FakeEntraGraph, client: GraphClient) -> None:
    """410 Gone (tenant maintenance) asks for a full resync."""
    fake.add_user()
    delta_link = run_round(client)[-1].delta_link
    fake.inject(410)
    with pytest.raises(DeltaExpired) as caught:
        run_round(client, delta_link)
    assert caught.value.status == 410


def test_bad_client_secret_raises_auth_error_with_correlation_id(make_client: Any) -> None:
    """msal's refusal surfaces as GraphAuthError with Entra's correlation id and description."""
    client = make_client(INTRANET_ENTRA_CLIENT_SECRET="wrong")
    with pytest.raises(GraphAuthError) as caught:
        run_round(client)
    assert caught.value.error == "invalid_client"
    assert "AADSTS7000215" in (caught.value.error_description or "")
    assert caught.value.correlation_id


def test_users_by_ids_returns_current_state_with_manager(fake: FakeEntraGraph, client: GraphClient) -> None:
    """users_by_ids reads named users, in chunks the $filter accepts, with their manager."""
    boss = fake.add_user()
    ids = [fake.add_user(manager=boss) for _ in range(20)]
    users = list(client.users_by_ids([*ids, str(uuid.uuid4())]))
    assert sorted(user["id"] for user in users) == sorted(ids)
    assert {user["manager"]["id"] for user in users} == {boss}


def test_routed_real_hosts_serve_production_urls() -> None:
    """With responses routing, the default (production) URLs reach the same fake."""
    fake = FakeEntraGraph()
    fake.add_user()
    settings = GraphSettings.from_config(routed_config(fake))
    with routed_real_hosts(fake), requests.Session() as session:
        pages = list(GraphClient(settings, session=session).iter_delta(None))
    graph.clear_app_cache()
    assert pages[-1].delta_link.startswith("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=")


# ---------------------------------------------------------------- settings


def test_select_hash_ignores_order_and_case_but_not_content(make_settings: Any) -> None:
    """Reordering $select keeps the hash; adding a property changes it."""
    base = make_settings(INTRANET_GRAPH_SELECT="id,displayName,department")
    assert base.select_hash() == make_settings(INTRANET_GRAPH_SELECT="Department, id,displayname").select_hash()
    assert base.select_hash() != make_settings(INTRANET_GRAPH_SELECT="id,displayName,department,city").select_hash()


def test_from_config_names_missing_keys() -> None:
    """A missing tenant or client id is reported by its config key."""
    with pytest.raises(ConfigurationError, match="INTRANET_ENTRA_TENANT_ID"):
        GraphSettings.from_config({"INTRANET_ENTRA_CLIENT_ID": "x", "INTRANET_ENTRA_CLIENT_SECRET": "y"})


def test_multi_tenant_authority_is_refused() -> None:
    """Sign-in and sync need one tenant: 'common' is rejected with a hint."""
    with pytest.raises(ConfigurationError, match="single-tenant"):
        GraphSettings(tenant_id="common", client_id="x", client_secret="y")


# ---------------------------------------------------------------- sign-in


def test_sign_in_returns_the_identity_from_the_id_token(
    fake: FakeEntraGraph, make_settings: Any, browser: requests.Session
) -> None:
    """The auth-code flow yields tid and oid (the Graph user id) of the person who signed in."""
    adele = fake.add_user(displayName="Adele Vance", mail="adele@contoso.test")
    settings = make_settings()
    flow = begin_sign_in(settings, REDIRECT_URI)
    form = follow_sign_in(flow["auth_uri"], browser, user_id=adele)
    assert form.action == REDIRECT_URI
    identity = finish_sign_in(settings, flow, form.fields)
    assert (identity.tid, identity.oid, identity.name, identity.email) == (
        fake.tenant_id,
        adele,
        "Adele Vance",
        "adele@contoso.test",
    )


def test_sign_in_uses_pkce_and_form_post(fake: FakeEntraGraph, make_settings: Any) -> None:
    """The authorize request asks for form_post and carries an S256 code challenge and a nonce."""
    flow = begin_sign_in(make_settings(), REDIRECT_URI)
    assert "response_mode=form_post" in flow["auth_uri"]
    assert "code_challenge_method=S256" in flow["auth_uri"] and "nonce=" in flow["auth_uri"]


def test_tampered_state_is_refused(fake: FakeEntraGraph, make_settings: Any, browser: requests.Session) -> None:
    """A response whose state does not match the session's flow is refused."""
    fake.add_user()
    settings = make_settings()
    flow = begin_sign_in(settings, REDIRECT_URI)
    form = follow_sign_in(flow["auth_uri"], browser)
    with pytest.raises(SignInRefused, match="state"):
        finish_sign_in(settings, flow, {**form.fields, "state": "forged"})


def test_replayed_response_is_refused(fake: FakeEntraGraph, make_settings: Any, browser: requests.Session) -> None:
    """Posting the same sign-in response a second time is refused."""
    fake.add_user()
    settings = make_settings()
    flow = begin_sign_in(settings, REDIRECT_URI)
    form = follow_sign_in(flow["auth_uri"], browser)
    finish_sign_in(settings, flow, form.fields)
    with pytest.raises(SignInRefused, match="already used"):
        finish_sign_in(settings, flow, form.fields)


def test_code_from_another_flow_is_refused_by_pkce(
    fake: FakeEntraGraph, make_settings: Any, browser: requests.Session
) -> None:
    """A code stolen from another browser fails Entra's PKCE check."""
    fake.add_user()
    settings = make_settings()
    victim = begin_sign_in(settings, REDIRECT_URI)
    attacker = begin_sign_in(settings, REDIRECT_URI)
    stolen = follow_sign_in(victim["auth_uri"], browser)
    with pytest.raises(SignInRefused) as caught:
        finish_sign_in(settings, attacker, {**stolen.fields, "state": attacker["state"]})
    assert "AADSTS501481" in (caught.value.error_description or "")


def test_id_token_for_another_tenant_is_refused(
    fake: FakeEntraGraph, make_settings: Any, browser: requests.Session
) -> None:
    """An ID token whose tid is not the configured tenant is refused."""
    fake.add_user()
    fake.id_token_overrides = {"tid": str(uuid.uuid4())}
    settings = make_settings()
    flow = begin_sign_in(settings, REDIRECT_URI)
    form = follow_sign_in(flow["auth_uri"], browser)
    with pytest.raises(SignInRefused, match="tenant"):
        finish_sign_in(settings, flow, form.fields)


def test_id_token_without_nonce_is_refused(
    fake: FakeEntraGraph, make_settings: Any, browser: requests.Session
) -> None:
    """An ID token that does not echo the flow's nonce is refused."""
    fake.add_user()
    fake.id_token_overrides = {"nonce": None}
    settings = make_settings()
    flow = begin_sign_in(settings, REDIRECT_URI)
    form = follow_sign_in(flow["auth_uri"], browser)
    with pytest.raises(SignInRefused, match="nonce"):
        finish_sign_in(settings, flow, form.fields)


def test_error_response_from_entra_is_refused(make_settings: Any) -> None:
    """An error posted back by Entra (e.g. the person cancelled) is refused with its description."""
    settings = make_settings()
    flow = begin_sign_in(settings, REDIRECT_URI)
    form = {"error": "access_denied", "error_description": "AADSTS65004: User declined.", "state": flow["state"]}
    with pytest.raises(SignInRefused, match="access_denied"):
        finish_sign_in(settings, flow, form)
