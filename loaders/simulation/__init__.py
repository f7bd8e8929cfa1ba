"""A seeded simulator of an LSST-like survey producing the apdb and dr tables as DataFrames.

See :mod:`loaders.simulate` for the public entry point; the modules here each
hold one part: the true sky, the schedule, the camera, the photometry, the
prompt and release catalogs, asteroids, and the schema conformance of frames.
"""
