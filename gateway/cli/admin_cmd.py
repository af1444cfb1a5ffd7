"""``tack admin serve``: the admin app alone, on the store file.

For a machine where the gateway runs elsewhere on the same store, or to look at a copy of a
store. Inside the gateway the app runs when ``admin.enabled`` is set; this is the same app
without the gateway's live metrics.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import ConfigOption, console, run, settings_from

app = typer.Typer(help="The admin web UI and API.", no_args_is_help=True)


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address; default admin.host.")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port; default admin.port.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the admin UI (/) and API (/api/docs) until Ctrl-C."""
    settings = settings_from(config)
    where_host = host or settings.admin.host
    where_port = port or settings.admin.port

    async def main() -> None:
        import asyncio
        import signal

        from gateway.admin.app import create_app
        from gateway.admin.server import AdminServer
        from gateway.security.store_lock import SharedStoreLock
        from gateway.store import open_database

        # Held like the gateway's: a restore must not swap the store under a running app.
        store_lock = SharedStoreLock(settings.db_path)
        db = await open_database(settings.db_path)
        server = AdminServer(create_app(settings, db), where_host, where_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await server.start()
            console.print(
                f"admin app on http://{where_host}:{server.port}/ (API docs at /api/docs); "
                "Ctrl-C stops it"
            )
            await stop.wait()
        finally:
            await server.stop()
            await db.close()
            store_lock.release()

    run(main())
