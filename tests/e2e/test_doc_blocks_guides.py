"""The shell blocks of every doc but the install docs, as pasted: the other half of
test_doc_blocks.py (which has the rules, the list of blocks that cannot run and the reasons), in
a module of its own so that xdist runs the two halves on two workers."""

from __future__ import annotations

import pytest
from doc_blocks import Machine
from test_doc_blocks import DOCS, INSTALL_DOCS, doc_params, machine, run_doc, wheelhouse

__all__ = ["machine", "wheelhouse"]  # the fixtures, used by name


@pytest.mark.timeout(900)
@pytest.mark.parametrize("doc", doc_params([d for d in DOCS if d not in INSTALL_DOCS]))
def test_guide_blocks_work_as_pasted(doc: str, machine: Machine) -> None:
    run_doc(doc, machine)
