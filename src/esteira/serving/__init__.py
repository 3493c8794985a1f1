"""The prediction service: FastAPI on uvicorn, hot swap, request validation, prediction log."""
