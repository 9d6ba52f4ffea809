"""A believable, deterministic demo organisation: people, groups and posts.

Departments are Zipf-sized, people spread over three regions and their time zones, levels form a
pyramid, everyone but the top has a manager in their department. The same seed always gives the
same organisation, so demo instructions and screenshots stay true.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable

from sqlmodel import Session, select

from intranet import targeting
from intranet.models import Employee, Group, GroupMember, GroupOwner, Post

DEPARTMENTS = [
    ("Operations", "Operations"), ("Sales", "Commercial"), ("Engineering", "Technology"),
    ("Customer Support", "Operations"), ("Marketing", "Commercial"), ("Finance", "Corporate"),
    ("Research & Development", "Technology"), ("People", "Corporate"), ("Legal", "Corporate"),
    ("Communications", "Corporate"),
]
OFFICES = [  # office, country, region, time zone, language, weight
    ("Berlin", "DE", "EMEA", "Europe/Berlin", "de", 6), ("Madrid", "ES", "EMEA", "Europe/Madrid", "es", 4),
    ("London", "GB", "EMEA", "Europe/London", "en", 5), ("Paris", "FR", "EMEA", "Europe/Paris", "fr", 3),
    ("New York", "US", "AMER", "America/New_York", "en", 6), ("Austin", "US", "AMER", "America/Chicago", "en", 3),
    ("São Paulo", "BR", "AMER", "America/Sao_Paulo", "pt", 2), ("Tokyo", "JP", "APAC", "Asia/Tokyo", "ja", 3),
    ("Singapore", "SG", "APAC", "Asia/Singapore", "en", 2), ("Sydney", "AU", "APAC", "Australia/Sydney", "en", 2),
]
FIRST = ["Ada", "Ben", "Chloé", "Daniel", "Elif", "Farah", "Gustavo", "Hana", "Ivan", "Jun", "Kemi", "Lars", "Maya",
         "Nikhil", "Olga", "Pablo", "Qi", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe"]
LAST = ["Andersen", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Hoffmann", "Ito", "Jensen", "Kim",
        "López", "Müller", "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka", "Usman", "Vogel", "Wang",
        "Xu", "Yamamoto", "Zhang"]
TITLES = {1: "Associate", 2: "Associate", 3: "Specialist", 4: "Senior Specialist", 5: "Lead", 6: "Manager",
          7: "Senior Manager", 8: "Director", 9: "Vice President", 10: "Chief Officer"}
LEVEL_WEIGHTS = [14, 18, 18, 15, 12, 9, 6, 4, 2, 1]
TOPICS = ["Company News", "IT & Security", "People & Culture", "Health & Safety", "Products", "Events"]
POSTS = [
    ("Quarterly results: a record quarter", "Company News", {"all": True}, False),
    ("Mandatory security training due this month", "IT & Security", {"all": True}, True),
    ("New hybrid work guidelines for EMEA", "People & Culture", {"segments": [{"regions": ["EMEA"]}]}, False),
    ("AMER benefits enrolment is open", "People & Culture", {"segments": [{"regions": ["AMER"]}]}, True),
    ("Tokyo office move: what changes", "Company News", {"segments": [{"offices": ["Tokyo"]}]}, False),
    ("Leadership offsite: agenda and pre-reads", "Events",
     {"segments": [{"level_min": 7}]}, False),
    ("Sales kick-off 2027 registration", "Events", {"segments": [{"departments": ["Sales", "Marketing"]}]}, False),
    ("Phishing alert: fake invoice emails", "IT & Security", {"all": True}, True),
    ("Engineering all-hands recording", "Products",
     {"segments": [{"departments": ["Engineering", "Research & Development"]}]}, False),
    ("Fire drill in the Berlin office on Thursday", "Health & Safety", {"segments": [{"offices": ["Berlin"]}]}, True),
    ("Finance close calendar for December", "Company News", {"segments": [{"departments": ["Finance"]}]}, False),
    ("Runners' club: spring relay team", "Events", {"segments": [{"groups": ["runners"]}]}, False),
    ("Parents network: school holiday swap", "People & Culture", {"segments": [{"groups": ["parents"]}]}, False),
    ("Product launch: Beacon Mobile", "Products", {"all": True, "exclude": [{"level_max": 1}]}, False),
    ("Customer support rota changes in APAC", "Company News",
     {"segments": [{"departments": ["Customer Support"], "regions": ["APAC"]}]}, False),
    ("Expense policy update for managers", "Company News", {"segments": [{"level_min": 6}]}, False),
    ("Green team: office recycling results", "Events", {"segments": [{"groups": ["green-team"]}]}, False),
    ("Welcome to our new colleagues", "People & Culture", {"segments": [{"groups": ["new-joiners"]}]}, False),
]
GROUPS = [("runners", "Runners' club", "open"), ("parents", "Parents network", "open"),
          ("green-team", "Green team", "open"), ("new-joiners", "New joiners", "managed"),
          ("leadership", "Leadership forum", "managed")]
ASCII = str.maketrans("éíüãó", "eiuao")
#: The named demo accounts, role -> email, so that people know whom to sign in as.
ACCOUNTS = {"admin": "admin@beacon.example", "comms": "comms@beacon.example", "employee": "employee@beacon.example"}


@dataclasses.dataclass
class SeedResult:
    employees: int
    groups: int
    posts: int
    accounts: dict[str, str]


def _zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (k ** s) for k in range(1, n + 1)]


def seed(session: Session, *, employees: int = 300, seed: int = 7, now: dt.datetime,
         progress: Callable[[int], None] | None = None) -> SeedResult:
    """Create the demo organisation (refuses to run on a directory that already has people).

    :param employees: how many people (at least 10).
    :param seed: the random seed; the same seed gives the same organisation.
    """
    if has_people(session):
        raise RuntimeError("The directory already has employees; demo data goes into an empty database only.")
    employees = max(employees, 10)
    rng = random.Random(seed)
    dept_weights = _zipf_weights(len(DEPARTMENTS))
    office_weights = [o[5] for o in OFFICES]
    people: list[Employee] = []
    by_department: dict[str, list[Employee]] = {}
    used_emails: set[str] = set()
    for i in range(1, employees + 1):
        department, division = rng.choices(DEPARTMENTS, dept_weights)[0]
        office, country, region, tz, language, _ = rng.choices(OFFICES, office_weights)[0]
        level = rng.choices(range(1, 11), LEVEL_WEIGHTS)[0]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}".lower().translate(ASCII)
        email = f"{local}@beacon.example" if local not in used_emails else f"{local}{i}@beacon.example"
        used_emails.add(local)
        person = Employee(employee_id=f"E{i:05d}", email=email, display_name=f"{first} {last}",
                          department=department, division=division, region=region, country=country, office=office,
                          job_title=f"{TITLES[level]}, {department}", level=level, level_label=f"L{level}",
                          timezone=tz, language=language, created_at=now, updated_at=now)
        people.append(person)
        by_department.setdefault(department, []).append(person)
    # Named demo accounts with predictable roles, so the README can tell people how to sign in.
    admin, comms, employee = people[0], people[1], people[2]
    admin.display_name, admin.email, admin.is_admin = "Alex Admin", ACCOUNTS["admin"], True
    comms.display_name, comms.email, comms.is_comms = "Casey Comms", ACCOUNTS["comms"], True
    comms.department, comms.division = "Communications", "Corporate"
    employee.display_name, employee.email = "Emma Employee", ACCOUNTS["employee"]
    employee.department, employee.region, employee.country, employee.office = "Sales", "EMEA", "DE", "Berlin"
    employee.timezone, employee.level = "Europe/Berlin", 3
    for person in people[3:8]:
        person.is_contributor = True
    for members in by_department.values():
        members.sort(key=lambda p: -(p.level or 0))
        for idx, person in enumerate(members[1:], start=1):
            seniors = [m for m in members[:idx] if (m.level or 0) > (person.level or 0)] or members[:1]
            person.manager_id = rng.choice(seniors[-5:]).employee_id
    for start in range(0, len(people), 1000):
        session.add_all(people[start:start + 1000])
        session.flush()
        if progress:
            progress(min(1000, len(people) - start))

    groups = {}
    for key, name, kind in GROUPS:
        group = Group(key=key, name=name, kind=kind, description=f"{name} at the company.", created_at=now)
        session.add(group)
        session.flush()
        groups[key] = group
        session.add(GroupOwner(group_id=group.id, employee_pk=comms.id))
    for person in people:
        for key, share in (("runners", 0.08), ("parents", 0.12), ("green-team", 0.05)):
            if rng.random() < share or (person is employee and key == "runners"):
                session.add(GroupMember(group_id=groups[key].id, employee_pk=person.id))
        if (person.level or 0) >= 8:
            session.add(GroupMember(group_id=groups["leadership"].id, employee_pk=person.id))
    for person in rng.sample(people, max(1, len(people) // 50)):
        session.add(GroupMember(group_id=groups["new-joiners"].id, employee_pk=person.id))
    session.flush()

    posts = 0
    for idx, (title, topic, audience, must_read) in enumerate(POSTS):
        published = now - dt.timedelta(days=len(POSTS) - idx, hours=rng.randint(0, 8))
        post = Post(title=title, topic=topic, must_read=must_read, status="published",
                    summary=f"{title}. Everything you need to know, in two minutes.",
                    body_html=f"<p>{title}.</p><p>This is demo content for Beacon. Read the details below and "
                              "reach out to your manager with questions.</p><ul><li>What changes</li>"
                              "<li>When it happens</li><li>Who to ask</li></ul>",
                    body_text=f"{title}.\n\nThis is demo content for Beacon.", author_pk=comms.id,
                    publish_at=published, published_at=published, created_at=published, updated_at=published,
                    ack_deadline=published + dt.timedelta(days=21) if must_read else None)
        session.add(post)
        session.flush()
        targeting.store_audience(session, post, targeting.parse_audience(audience))
        posts += 1
    session.flush()
    seed_journey(session, people, comms=comms, employee=employee, joiners=groups["new-joiners"], now=now,
                 rng=random.Random(seed + 1))
    accounts = {role: p.email for role, p in (("admin", admin), ("comms", comms), ("employee", employee))}
    return SeedResult(employees=len(people), groups=len(groups), posts=posts, accounts=accounts)


JOURNEY_STEPS = [  # key, day, title, must-read, skip unless read, reminder after days
    ("welcome", 0, "Welcome to the company: your first week", False, None, None),
    ("tools", 3, "Your tools guide: laptop, chat and the intranet", False, "welcome", None),
    ("benefits", 10, "Your benefits: choose them in your first month", True, None, 3),
]


def seed_journey(session: Session, people: list[Employee], *, comms: Employee, employee: Employee, joiners: Group,
                 now: dt.datetime, rng: random.Random) -> None:
    """Hire dates for everyone and one example journey for new joiners, already running.

    The demo employee was hired yesterday, so signing in as them shows the journey's welcome in
    the feed; the members of the new-joiners group were hired in the last fortnight.
    """
    from intranet.journeys import definitions, enrolment, releases  # a service above the demo's own imports

    recent = set(session.exec(select(GroupMember.employee_pk).where(GroupMember.group_id == joiners.id)).all())
    for person in people:
        days = rng.randint(0, 12) if person.id in recent else rng.randint(60, 3000)
        person.hire_date = (now - dt.timedelta(days=days)).date()
    employee.hire_date = (now - dt.timedelta(days=1)).date()
    session.add_all(people)
    journey = definitions.create_journey(session, definitions.JourneyIn(
        name="Welcome to the company", trigger="hire",
        description="New joiners' first weeks: a welcome, the tools guide, then their benefits."), author=comms, now=now)
    for key, day, title, must_read, skip, remind in JOURNEY_STEPS:
        definitions.add_step(session, journey, definitions.StepIn(
            key=key, offset_days=day, title=title, must_read=must_read, skip_unless_read=skip,
            reminder_after_days=remind, summary=f"{title}. Day {day} of your first weeks.",
            body_html=f"<p>{title}.</p><p>This is a demo journey step, released to you {day} days after you "
                      "joined.</p>"), author=comms, now=now)
    for person in people:
        if person.id in recent or person is employee:
            assert person.hire_date is not None
            enrolment.enrol(session, journey, person, event_key=f"hire:{person.hire_date.isoformat()}",
                            event_date=person.hire_date, now=now)
    releases.release_due(session, now)


def has_people(session: Session) -> bool:
    """Whether the directory has anyone in it yet."""
    return session.exec(select(Employee.id).limit(1)).first() is not None


def present_accounts(session: Session) -> dict[str, str]:
    """The named demo accounts (role -> email) that exist and can sign in."""
    emails = set(session.exec(select(Employee.email).where(Employee.email.in_(ACCOUNTS.values()),
                                                          Employee.active.is_(True))).all())
    return {role: email for role, email in ACCOUNTS.items() if email in emails}
