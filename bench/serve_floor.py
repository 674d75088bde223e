"""The floor of the Serve benchmark: the same framework call behind the same HTTP stack as
``modelseal serve`` (uvicorn with httptools and uvloop, Starlette routing) with no check at all: no
signature, no scan, no token, no input validation, no metrics.

    python bench/serve_floor.py MODEL.joblib PORT

Loads the benchmark's own model (written by bench_serve.py in the same run) with joblib: this
is a yardstick, never a way to serve a model.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def app_for(model: Any) -> Any:
    """A Starlette app answering the OIP v2 infer and ready routes of one model."""
    import numpy as np
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def infer(request: Request) -> Response:
        tensor = json.loads(await request.body())["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        y = model.predict(x)
        out = {"name": "predict", "shape": list(y.shape), "datatype": "INT64",
               "data": y.tolist()}  # fmt: skip
        answer = {"model_name": "iris", "model_version": "1", "outputs": [out]}
        return Response(json.dumps(answer), media_type="application/json")

    async def ready(_request: Request) -> Response:
        return JSONResponse({"name": "iris", "ready": True})

    return Starlette(routes=[
        Route("/v2/models/iris/infer", infer, methods=["POST"]),
        Route("/v2/models/iris/ready", ready),
        Route("/v2/health/ready", ready),
    ])  # fmt: skip


def main(argv: list[str]) -> int:
    import joblib
    import uvicorn

    model = joblib.load(argv[0])  # the benchmark's own file, written moments ago
    uvicorn.run(app_for(model), host="127.0.0.1", port=int(argv[1]), log_level="warning",
                access_log=False, server_header=False)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
