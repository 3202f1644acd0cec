"""Tests of the rtcore Python package (unittest only).

Run from python/ as:
    RTCORE_LIB=/work/main/target/debug/librtcore.so \
        python3 -m unittest discover -s tests -t . -v

This file is needed: with ``-t .`` unittest imports the tests as the package
``tests`` and refuses a start directory without ``__init__.py``.
"""
