"""The documented JSON schema of fleet.alerts is the one the code produces and validates against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from records.messages import Alert

DOC = Path(__file__).resolve().parents[1] / "docs" / "alert.schema.json"


def test_docs_alert_schema_is_the_alert_message_schema():
    printed = subprocess.run(
        [sys.executable, "-m", "fleetscope", "message-schema", "alerts"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(DOC.read_text()) == json.loads(printed) == Alert.model_json_schema(), (
        "regenerate it: fleetscope message-schema alerts > docs/alert.schema.json"
    )
