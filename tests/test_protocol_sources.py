"""The protocol data against the source of the transformers that is installed.

Each requirement that applies to this version must have its call site in the source, and the call
shape it declares must be the one written there; a member that no requirement covers for this version
must have no call site (so a range boundary that is off by a release fails on that release's CI job).
"""

from __future__ import annotations

import re

import pytest

from trainer_compat.protocol.data import REQUIREMENTS
from trainer_compat.protocol.sites import _source_lines, resolve
from trainer_compat.versions import installed_transformers

VERSION = installed_transformers()
APPLIES = [r for r in REQUIREMENTS if VERSION in r.versions]
ABSENT = [r for r in REQUIREMENTS if VERSION not in r.versions
          and not any(o.member == r.member and VERSION in o.versions for o in REQUIREMENTS)]


def _id(req) -> str:
    return f"{req.member}[{req.versions}]"


@pytest.mark.parametrize("req", APPLIES, ids=_id)
def test_call_site_exists_in_this_version(req):
    assert resolve(req.site) is not None, f"{req.site.pattern!r} not found in {req.site.modules} of {VERSION}"


@pytest.mark.parametrize("req", [r for r in APPLIES if r.call is not None and r.call.kwargs], ids=_id)
def test_call_shape_matches_the_source(req):
    site = resolve(req.site)
    module = next(m for m in req.site.modules if _source_lines(m) and _source_lines(m)[0].endswith(site.file))
    lines = _source_lines(module)[1]
    call = " ".join(lines[site.line - 1: site.line + 5])
    call = call[: call.find(")", call.find(req.member)) + 1]
    passed = set(re.findall(r"(\w+)=", call))
    if "**" in call:  # generate(**inputs, **gen_kwargs): the keywords come from the batch
        assert passed <= set(req.call.kwargs)
    else:
        assert passed == set(req.call.kwargs), call


@pytest.mark.parametrize("req", ABSENT, ids=_id)
def test_no_call_site_where_no_requirement_applies(req):
    assert resolve(req.site) is None, f"{req.member} is read in {VERSION} but the data says only {req.versions}"
