"""Every table of the service, gathered for whatever must see them all (alembic, the tests'
database): above the domains, so that core never has to name them."""

from sqlmodel import SQLModel

# Importing a module with table models registers its tables on SQLModel.metadata.
from nogil_bench.auth import models as _auth_models  # noqa: F401
from nogil_bench.benchmarks import models as _benchmark_models  # noqa: F401
from nogil_bench.core import idempotency as _idempotency  # noqa: F401
from nogil_bench.core import storage as _storage  # noqa: F401
from nogil_bench.jobs import models as _job_models  # noqa: F401

METADATA = SQLModel.metadata
