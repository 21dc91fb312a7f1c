"""What the predictor adds to KServe's FastAPI app.

routes.py    the course's routes (`/health`, `/upload`), V2 refinements, error answers
openapi.py   the document `/docs` and `/redoc` show: what a user can call, how to authorize
docs.py      Swagger UI and ReDoc served from the image, compressed once, cached by ETag
"""
