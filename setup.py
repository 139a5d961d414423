"""The native media engine (media/_engine.c) is optional: without a C compiler the build
goes on and `media.engine` falls back to the pure-Python RTP path."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "media._engine",
            ["media/_engine.c", "media/_timeline.c", "media/_analysis.c"],
            depends=["media/_timeline.h", "media/_analysis.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
