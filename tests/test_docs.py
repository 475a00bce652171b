"""The generated docs are never stale: they are views of the rules and the protocol data."""

from trainer_compat import docgen


def test_generated_docs_are_current():
    for name, build in docgen.GENERATED.items():
        current = (docgen.DOCS / name).read_text(encoding="utf-8")
        assert current == build(), f"docs/{name} is stale: run `python -m trainer_compat.docgen`"


def test_the_readme_rule_table_is_current_and_lists_every_rule():
    from trainer_compat.catalog import all_rules

    readme = docgen.README.read_text(encoding="utf-8")
    assert readme == docgen.readme_with_table(readme), \
        "README.md's rule table is stale: run python -m trainer_compat.docgen"
    table = readme[readme.index(docgen.TABLE_START):readme.index(docgen.TABLE_END)]
    assert all(f"[{rule.code}]" in table for rule in all_rules())
