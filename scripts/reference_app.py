"""The floor of the service's own stack: a minimal app as a newcomer would write it, the reference
that scripts/bench_request_path.py measures the service against (issue 25, item 3).

FastAPI + SQLModel on SQLite (WAL) + PyJWT, no middleware, on the same interpreter, served by
one of the HTTP servers `nogil-bench serve` serves the service with, as a newcomer would run it:

    --server uvicorn   one process, h11 and asyncio (`uvicorn app:app`)
    --server granian   one worker thread, asyncio (`granian --interface asgi app:app`, GIL off)

each with its own access log (one line per request) unless --no-access-log. It reads the
service's own database file, never writes it:

    GET /live   {"status": "alive"}: the framework and the HTTP server, nothing else
    GET /me     the bearer token's user: PyJWT's decode and one `session.get`, as the tutorial
                writes it (a sync route, so FastAPI runs it on its thread pool)

    .venv/bin/python scripts/reference_app.py --database data/nogil_bench.db --secret S --port 8001
    .venv/bin/python scripts/reference_app.py --server granian --database ... (the same)
"""

import argparse
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import jwt
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer
from granian.constants import Interfaces, Loops
from granian.server.mt import MTServer
from sqlalchemy import Engine, event
from sqlmodel import Field, Session, SQLModel, create_engine

ALGORITHM = "HS256"


class User(SQLModel, table=True):
    """The service's `user` table, as far as this app reads it."""

    id: uuid.UUID = Field(primary_key=True)
    email: str
    created_at: datetime


class UserPublic(SQLModel):
    id: uuid.UUID
    email: str
    created_at: datetime


def make_engine(database: Path) -> Engine:
    engine = create_engine(f"sqlite:///{database}", connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[attr-defined]

    return engine


def create_app(database: Path, secret: str) -> FastAPI:
    engine = make_engine(database)
    oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")
    app = FastAPI(title="reference")

    @app.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/me", response_model=UserPublic)
    def me(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
        try:
            claims = jwt.decode(token, secret, algorithms=[ALGORITHM])
        except jwt.PyJWTError:
            raise HTTPException(status_code=401, detail="invalid token") from None
        with Session(engine) as session:
            user = session.get(User, uuid.UUID(claims["sub"]))
        if user is None:
            raise HTTPException(status_code=401, detail="no such user")
        return user

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", type=Path, required=True, help="the service's SQLite file")
    parser.add_argument("--secret", required=True, help="the service's NOGIL_BENCH_SECRET_KEY")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--server", choices=("uvicorn", "granian"), default="uvicorn", help="default: %(default)s"
    )
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no line per request (compare with the service at NOGIL_BENCH_LOG_LEVEL=WARNING)",
    )
    args = parser.parse_args(argv)
    if not args.database.is_file():
        parser.error(f"no database at {args.database}")
    app = create_app(args.database, args.secret)
    if args.server == "granian":
        serve_with_granian(app, args.host, args.port, access_log=args.access_log)
        return
    # As `nogil-bench serve --server uvicorn` runs it: h11 and asyncio (httptools and uvloop
    # would turn the GIL back on).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="h11",
        loop="asyncio",
        log_level="info" if args.access_log else "warning",
        access_log=args.access_log,
    )


def serve_with_granian(app: FastAPI, host: str, port: int, *, access_log: bool) -> None:
    """One Granian worker thread, as `granian --interface asgi app:app` runs it on 3.14t; the
    app object is handed over as it is (Granian would import it by name)."""
    server = MTServer(
        target="reference_app:app",  # only named: the app is given to serve()
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.asyncio,
        websockets=False,
        log_access=access_log,
    )
    server.serve(target_loader=lambda: app, wrap_loader=False)


if __name__ == "__main__":
    main()
