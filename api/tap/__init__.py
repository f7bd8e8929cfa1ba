"""The TAP 1.1 service: FastAPI application, parameters, formats, jobs."""
