"""The generated docs are never stale: they are views of the rules and the protocol data."""

from trainer_compat import docgen


def test_generated_docs_are_current():
    for name, build in docgen.GENERATED.items():
        current = (docgen.DOCS / name).read_text(encoding="utf-8")
        assert current == build(), f"docs/{name} is stale: run `python -m trainer_compat.docgen`"
