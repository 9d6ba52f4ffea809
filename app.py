"""Standalone entry point: ``flask --app app run`` or ``python app.py`` (which also runs the scheduler)."""
from intranet import create_app

app = create_app()

if __name__ == "__main__":
    from intranet.jobs import serve

    serve(app)
