"""`bertcli models`: the alias table keeps every hub id and column header whole at 80 columns."""

from __future__ import annotations

import json


def test_models_table_at_80_columns_cuts_nothing(run_cli, tmp_path):
    records = json.loads(run_cli("--cache-dir", tmp_path, "models", "-f", "json").stdout)
    assert len(records) >= 7
    for columns in ("80", "200"):
        proc = run_cli("--cache-dir", tmp_path, "models", "-f", "table", env={"COLUMNS": columns})
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert max(len(line) for line in lines) <= int(columns)
        assert "…" not in proc.stdout, columns
        for header in ("alias", "hub id", "cached") + (("family",) if columns == "200" else ()):
            assert header in lines[0], (columns, header)
        for rec in records:  # at 80 columns the family moves under the alias (ModernBERT is too wide for it)
            assert any(f"│ {rec['family']} " in line or f" {rec['family']} " in line for line in lines), rec
            assert any(f"│ {rec['repo_id']} " in line for line in lines), (columns, rec["repo_id"])
            assert rec["description"] in proc.stdout, (columns, rec["description"])  # moved under the id at 80
