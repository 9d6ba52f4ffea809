"""The connection budget: can every process of a deployment get its pooled connections?

Each web worker and the scheduler keep their own SQLAlchemy pool, so the most connections a
deployment opens is ``(instances x workers + scheduler) x (pool size + max overflow)``. When that
exceeds what PostgreSQL accepts, the last processes to need a connection fail with "too many
clients" under load, long after the start. Checked once at start-up, as a warning: the sum is
an upper bound (overflow connections are opened only during bursts), and other clients of the
server (backups, psql) need slots too.
"""
from __future__ import annotations

import dataclasses
import logging

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from intranet.db import connection_demand, connection_limit
from intranet.settings import Settings

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Budget:
    """The deployment's connection demand against the server's limit (None: not PostgreSQL or unreachable)."""

    demand: int
    limit: int | None

    @property
    def fits(self) -> bool:
        return self.limit is None or self.demand <= self.limit


def check_connection_budget(engine: Engine, settings: Settings) -> Budget:
    """Compare the configured demand with the server's ``max_connections``; log a warning when it does not fit.

    :param settings: ``INTRANET_INSTANCES``, ``INTRANET_WEB_WORKERS`` and the ``INTRANET_DB_*`` pool.
    """
    pool, server = settings.database, settings.server
    demand = connection_demand(pool, instances=server.instances, workers=server.workers)
    try:
        limit = connection_limit(engine)
    except SQLAlchemyError as exc:
        logger.warning("Could not read max_connections to check the connection budget (%s)",
                       type(exc.orig or exc).__name__)
        return Budget(demand, None)
    budget = Budget(demand, limit)
    arithmetic = (f"({server.instances} instances x {server.workers} workers + 1 scheduler) x "
                  f"({pool.pool_size} pool + {pool.max_overflow} overflow) = {demand}")
    if not budget.fits:
        logger.warning("The connection pools may need more connections than PostgreSQL allows: %s > %s "
                       "(max_connections less reserved slots). Lower INTRANET_DB_POOL_SIZE, INTRANET_DB_MAX_OVERFLOW "
                       "or INTRANET_WEB_WORKERS, or raise max_connections.", arithmetic, limit)
    elif limit is not None:
        logger.info("Connection budget: %s <= %s allowed by PostgreSQL", arithmetic, limit)
    return budget
