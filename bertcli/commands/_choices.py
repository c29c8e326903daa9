"""The option types of the model-running commands with a fixed set of values, built once from the core's tuples.

Each is a str Enum (`bertcli.choices.choice_enum`): ``--help`` lists its members, the shell completes them, click
refuses anything else with one ``error: …`` line and exit 2, and a member *is* its plain string
(``Pooling("mean") == "mean"``), so the core takes it as it always took strings. Kept apart from `_common` so that
commands without them (tokenize, config, inspect) do not build them at start-up.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bertcli.backends import BACKENDS, QUANTIZE
from bertcli.choices import (AGGREGATIONS, COMPUTE, DTYPES, ENGINES, FUNCTIONS, ON_LONG, POOLINGS, SCALES, STRATEGIES,
                             choice_enum)

Pooling = choice_enum("Pooling", POOLINGS)
OnLong = choice_enum("OnLong", ON_LONG)
Compute = choice_enum("Compute", COMPUTE)
Dtype = choice_enum("Dtype", DTYPES)
Engine = choice_enum("Engine", ENGINES)
Backend = choice_enum("Backend", BACKENDS)
Quantize = choice_enum("Quantize", QUANTIZE)
Strategy = choice_enum("Strategy", STRATEGIES)
Scale = choice_enum("Scale", SCALES)
Aggregation = choice_enum("Aggregation", AGGREGATIONS)
Function = choice_enum("Function", FUNCTIONS)

#: ``--backend`` for every model-running command: declare ``backend: BackendOption = DEFAULT_BACKEND`` (bertcli.backends)
BackendOption = Annotated[Backend, typer.Option(
    "--backend", case_sensitive=False,
    help="auto (ONNX Runtime on the CPU, the model exported once into bertcli's cache; torch where ONNX cannot "
         "serve: another --device, --compute bfloat16/float16, a failed export) | onnx (always; errors instead) | torch.")]
