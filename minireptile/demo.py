"""The interactive 1-shot demo: draw one example of each class, then a new character.

``python -m minireptile demo`` serves ``demo.html`` on 127.0.0.1. The page posts the
strokes to ``/classify``; the server renders them like an Omniglot image, fine-tunes a
copy of the meta-learned theta on the N support drawings (the Omniglot evaluation
settings: 50 inner Adam steps of 0.001 on minibatches of 5), and classifies the query
in a batch of its own with the support set (non-transductive).
"""
import http.server
import json
import math
import time
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .inner import AdamState, run_adam
from .losses import softmax_cross_entropy
from .models import omniglot_net
from .seeds import stream
from .tasks.fewshot import cycle_batches, predict
from .tasks.omniglot import preprocess
from .train import CheckpointError, load_inner_state, load_theta

MAX_BODY = 1 << 20                 # bytes: a request larger than this is refused
DRAIN_BODY = 16 * MAX_BODY         # bytes: a refused body up to this size is read before replying
MAX_POINTS = 20000                 # points over all canvases
RENDER = 105                       # Omniglot's image size
STROKE = 6.0                       # pen width at 105 px, as measured on Omniglot


def default_checkpoint():
    return resources.files("minireptile") / "omniglot_5way.npz"


class Model:
    """The meta-learned theta (and inner Adam state, if saved) of a 5-way Omniglot net."""

    def __init__(self, path=None, lr=0.001, steps=50, batch_size=5):
        path = default_checkpoint() if path is None else Path(path)
        self.net = omniglot_net(5)
        self.theta = load_theta(path).astype(np.float32).reshape(-1)
        if self.theta.size != self.net.num_params:
            raise CheckpointError(f"checkpoint {path} has {self.theta.size} parameters, but the 5-way "
                             f"Omniglot net needs {self.net.num_params}")
        state = load_inner_state(path)
        # a training checkpoint keeps one state per task slot; the demo adapts with their mean
        self.state = None if state is None else AdamState(
            state.m.astype(np.float32), state.v.astype(np.float32), state.t).mean_over_tasks()
        self.lr, self.steps, self.batch_size = lr, steps, batch_size

    def classify(self, support, query, seed=0):
        """support (N, 28, 28), query (28, 28) -> probabilities over the N classes, seconds."""
        start = time.perf_counter()
        n = len(support)
        x = np.asarray(support, dtype=np.float32)[None, :, None]          # (1, N, 1, 28, 28)
        labels = np.arange(n)[None]
        batches = cycle_batches(stream(seed, "demo batches"), x, labels, self.batch_size, self.steps)
        state = None if self.state is None else self.state.for_tasks(1)
        phi = run_adam(self.net, self.theta[None], batches, self.lr, softmax_cross_entropy, state)[0]
        logits = predict(self.net, phi, x, np.asarray(query, np.float32)[None, None, None],
                         transductive=False)[0, 0, :n]                     # the N classes drawn
        p = np.exp(logits - logits.max())
        return p / p.sum(), time.perf_counter() - start


def render(strokes, width, height):
    """Strokes [[[x, y], ...], ...] on a width x height canvas -> (28, 28) like ``load_image``.

    Drawn black on white at Omniglot's 105 x 105 scale, the ink's bounding box centred in
    the frame (as Omniglot's drawings are), then preprocessed exactly as Omniglot PNGs.
    """
    return preprocess(render_image(strokes, width, height))


def render_image(strokes, width, height):
    scale = RENDER / max(width, height)
    points = [(x * scale, y * scale) for stroke in strokes for x, y in stroke]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    dx, dy = RENDER / 2 - (min(xs) + max(xs)) / 2, RENDER / 2 - (min(ys) + max(ys)) / 2
    image = Image.new("L", (RENDER, RENDER), 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        line = [(x * scale + dx, y * scale + dy) for x, y in stroke]
        if len(line) == 1:
            (x, y), r = line[0], STROKE / 2
            draw.ellipse([x - r, y - r, x + r, y + r], fill=0)
        else:
            draw.line(line, fill=0, width=round(STROKE), joint="curve")
    return image


def parse_request(body):
    """Check a /classify request; returns (support strokes, query strokes, width, height)."""
    if len(body) > MAX_BODY:
        raise ValueError(f"the request is too large ({len(body)} bytes; at most {MAX_BODY})")
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("the request is not valid JSON") from None
    if not isinstance(request, dict):
        raise ValueError("the request must be a JSON object with 'support', 'query' and 'size'")
    support, query = request.get("support"), request.get("query")
    size = request.get("size", [280, 280])
    if not isinstance(support, list) or not 2 <= len(support) <= 5:
        raise ValueError(f"draw 2 to 5 classes; got {len(support) if isinstance(support, list) else 'none'}")
    if not (isinstance(size, list) and len(size) == 2 and all(_number(v) and v > 0 for v in size)):
        raise ValueError("size must be [width, height] with positive numbers")
    canvases = [(f"class {i + 1}", strokes) for i, strokes in enumerate(support)] + [("query", query)]
    total = 0
    for name, strokes in canvases:
        if not isinstance(strokes, list) or not strokes:
            raise ValueError(f"the {name} canvas is empty: draw something first")
        for stroke in strokes:
            if not isinstance(stroke, list) or not stroke:
                raise ValueError(f"the {name} canvas has a stroke that is not a list of points")
            for point in stroke:
                if not (isinstance(point, list) and len(point) == 2 and all(map(_number, point))):
                    raise ValueError(f"the {name} canvas has a point that is not two numbers: {point!r:.40}")
            total += len(stroke)
    if total > MAX_POINTS:
        raise ValueError(f"too many points ({total}; at most {MAX_POINTS})")
    return support, query, float(size[0]), float(size[1])


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Handler(http.server.BaseHTTPRequestHandler):
    model = None                                        # set by make_server()

    def do_GET(self):
        if not self._local():
            return
        if self.path in ("/", "/index.html"):
            page = (resources.files("minireptile") / "demo.html").read_bytes()
            return self._send(200, page, "text/html; charset=utf-8")
        self._send_json(404, {"error": f"no page {self.path}"})

    def do_POST(self):
        if not self._local():
            return
        length = self._content_length()
        if length is None:
            return
        if self.path != "/classify":
            self._discard(length)                      # read the body first, so the client gets the 404
            return self._send_json(404, {"error": f"no endpoint {self.path}"})
        try:
            support, query, width, height = parse_request(self.rfile.read(length))
            images = [render(s, width, height) for s in support]
            probabilities, seconds = self.model.classify(images, render(query, width, height))
        except ValueError as err:
            return self._send_json(400, {"error": str(err)})
        self._send_json(200, {"prediction": int(np.argmax(probabilities)),
                              "probabilities": [float(p) for p in probabilities],
                              "seconds": seconds})

    def _content_length(self):
        """The body's size, or None after answering 400 to a malformed or oversized one.

        An oversized body up to DRAIN_BODY bytes is read and discarded first: a client that
        sends the whole body before reading (urllib, requests) would otherwise meet a closed
        socket (broken pipe) instead of the message.
        """
        text = self.headers.get("Content-Length") or "0"
        try:
            length = int(text)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True              # where the body ends is unknown
            self._send_json(400, {"error": f"Content-Length must be a byte count; got {text!r}"})
            return None
        if length > MAX_BODY:
            if length <= DRAIN_BODY:
                self._discard(length)
            self.close_connection = True
            self._send_json(400, {"error": f"the request is too large ({length} bytes; at most {MAX_BODY})"})
            return None
        return length

    def _discard(self, size):
        while size > 0:
            chunk = self.rfile.read(min(size, 1 << 16))
            if not chunk:                          # the client stopped sending
                return
            size -= len(chunk)

    def _local(self):
        if self.client_address[0] != "127.0.0.1":
            self._send_json(403, {"error": "this demo serves 127.0.0.1 only"})
            return False
        return True

    def _send_json(self, status, data):
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def make_server(model, port=8000):
    """A threading HTTP server on 127.0.0.1 (port 0 picks a free one)."""
    handler = type("DemoHandler", (Handler,), {"model": model})
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


class PortRefused(ValueError):
    """A --port out of range, or taken on 127.0.0.1."""


def serve(checkpoint=None, port=8000):
    """Serve the demo of ``checkpoint`` (default: the shipped one) on 127.0.0.1 until Ctrl-C."""
    import errno
    if not 0 <= port <= 65535:
        raise PortRefused(f"--port must be from 0 to 65535 (0: any free port), got {port}")
    model = Model(checkpoint)
    try:
        server = make_server(model, port)
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        raise PortRefused(f"--port {port}: the port is taken on 127.0.0.1 (another demo or server runs there); "
                        "choose another with --port N, or --port 0 for any free one") from None
    print(f"minireptile demo: open http://127.0.0.1:{server.server_port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
