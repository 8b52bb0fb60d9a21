from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]
    python_version: str = Field(examples=["3.14.7"])
    implementation: str = Field(examples=["cpython"])
    free_threaded: bool = Field(description="The build has the GIL compiled out (Py_GIL_DISABLED).")
    gil_enabled: bool = Field(description="The GIL is on right now (sys._is_gil_enabled()).")
    cpu_count: int = Field(description="CPUs this process may use.", examples=[2])


class HealthDetails(Health):
    packages: dict[str, str] = Field(
        description="Versions of the packages that serve requests and run the work.",
        examples=[{"fastapi": "0.165.0", "pillow": "13.0.0"}],
    )


class Liveness(BaseModel):
    status: Literal["alive"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(
        description="Each check's result: 'ok', or why it failed.",
        examples=[{"database": "ok", "executor": "ok", "draining": "ok"}],
    )
