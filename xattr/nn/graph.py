"""Models as graphs of layers: :class:`Graph`, its :class:`Tape`, and :class:`Sequential`.

A model is a directed acyclic graph of named nodes, each a layer applied to one or more named
inputs (``"input"`` is the image batch).  The graph is sorted topologically once, at construction;
every walk over it lives here, in two functions that methods call instead of walking layers
themselves (HIPS/autograd's single traversal is the model):

``tape = model.trace(x)``
    One forward pass that records, per node, its input(s) ``x``, output ``y`` and the layer's
    ``cache`` (``tape[name]``).
``tape.pull(seed, rule=..., at=..., to=..., taps=...)``
    One backward walk in reverse topological order with a column of the rule table: what comes back
    to a node that feeds several others is summed (fan-out), a merge layer returns one part per
    input, ``rule`` may be a composite (a function of the node choosing a rule and its options),
    ``taps`` see (and may replace) the complete gradient arriving at any node's output: this is how
    Grad-CAM reads activations and gradients at any node, LRP collects totals, and training
    collects parameter gradients.
``tape.push(direction)``
    The forward-mode walk (each layer's ``jvp``): the derivative of every node along a direction,
    which exact integrated gradients uses to find where the next kink happens.

:class:`Sequential` builds the same container as a chain (each layer fed by the previous one) and
keeps the chain's conveniences (``model[0]``, ``forward_all``, ``backward``), written on the walk.
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np

from .._conventions import as_float_array
from .._errors import XattrError
from .base import CONTEXT_OPTIONS, Cache, Layer, option_names

#: the name of the graph's input (the image batch).
INPUT = "input"


class GraphError(XattrError, ValueError):
    """A graph that cannot be built: unknown input, cycle, wrong number of inputs, dangling node."""


class Node:
    """One node: ``layer`` applied to the outputs of the nodes named in ``inputs``."""

    __slots__ = ("name", "layer", "inputs")

    def __init__(self, name, layer, inputs):
        self.name, self.layer, self.inputs = name, layer, tuple(inputs)

    def __repr__(self):
        return f"Node({self.name!r}, {self.layer!r}, inputs={self.inputs})"


def _as_inputs(inputs, name):
    if isinstance(inputs, str):
        return (inputs,)
    try:
        out = tuple(inputs)
    except TypeError:
        raise GraphError(f"node {name!r}: inputs must be a node name or a sequence of names, got {inputs!r}") from None
    if not out or not all(isinstance(i, str) for i in out):
        raise GraphError(f"node {name!r}: inputs must be one or more node names, got {inputs!r}")
    return out


def _accumulate(a, b):
    """Sum two gradients at a fan-out; a ``(m⁺, m⁻)`` pair (DeepLIFT RevealCancel) adds to both parts."""
    if a is None:
        return b
    if isinstance(a, tuple) or isinstance(b, tuple):
        a2 = a if isinstance(a, tuple) else (a, a)
        b2 = b if isinstance(b, tuple) else (b, b)
        return (a2[0] + b2[0], a2[1] + b2[1])
    return a + b


class Graph:
    """A directed acyclic graph of named layers; the model protocol's reference implementation.

    Parameters
    ----------
    nodes : iterable of ``(name, layer, inputs)``
        ``inputs`` is a node name or a sequence of names; ``"input"`` is the model's input.  Nodes may be
        given in any order: they are sorted topologically (keeping the given order where it is free).
    output : str, optional
        The node whose output is the model's scores ``(N, K)``; default the last node given.
    input_shape : tuple, optional
        One sample's shape ``(C, H, W)``: if given, a forward pass on zeros checks every node's shapes
        now (a merge of mismatched shapes is reported with the node's name).

    Notes
    -----
    The model protocol that methods rely on::

        scores = model.forward(x)                                    # (N, C, H, W) -> (N, K)
        gx = model.vjp(x, grad_scores, rule="gradient", **options)   # (N, K) -> x.shape

    and, for every rule of the table and any node, :meth:`trace` and :meth:`Tape.pull`.
    """

    def __init__(self, nodes, output=None, input_shape=None):
        items = list(nodes)
        if not items:
            raise GraphError("a graph needs at least one node")
        given = OrderedDict()
        seen_layers = {}
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 3):
                raise GraphError(f"each node is a (name, layer, inputs) triple, got {item!r}")
            name, layer, inputs = item
            if not isinstance(name, str) or not name:
                raise GraphError(f"node names are non-empty strings, got {name!r}")
            if name == INPUT:
                raise GraphError(f"{INPUT!r} is the name of the model's input; choose another node name")
            if name in given:
                raise GraphError(f"duplicate node name {name!r}")
            if not isinstance(layer, Layer):
                raise GraphError(f"node {name!r}: {layer!r} is not an xattr.nn Layer")
            if id(layer) in seen_layers:
                raise GraphError(
                    f"nodes {seen_layers[id(layer)]!r} and {name!r} share one layer object; give each node its own "
                    "layer (copy.deepcopy) or feed one node to both consumers"
                )
            seen_layers[id(layer)] = name
            ins = _as_inputs(inputs, name)
            arity = layer.arity
            if arity == 1 and len(ins) != 1:
                raise GraphError(f"node {name!r}: {type(layer).__name__} takes one input, got {len(ins)}: {ins}")
            if arity is None and len(ins) < 2:
                raise GraphError(f"node {name!r}: {type(layer).__name__} merges two or more inputs, got {ins}")
            if isinstance(arity, int) and arity != 1 and len(ins) != arity:
                raise GraphError(f"node {name!r}: {type(layer).__name__} takes {arity} inputs, got {len(ins)}: {ins}")
            given[name] = Node(name, layer, ins)
        for node in given.values():
            for i in node.inputs:
                if i != INPUT and i not in given:
                    raise GraphError(
                        f"node {node.name!r} takes input {i!r}, which is not a node; nodes are: "
                        f"{INPUT!r}, {', '.join(map(repr, given))}"
                    )
        self._nodes = OrderedDict((n, given[n]) for n in _toposort(given))
        self._output = list(given)[-1] if output is None else output
        if self._output not in self._nodes:
            raise GraphError(f"output {self._output!r} is not a node; nodes are: {', '.join(map(repr, given))}")
        needed = self._ancestors(self._output)
        dangling = [n for n in self._nodes if n not in needed]
        if dangling:
            raise GraphError(
                f"node(s) {', '.join(map(repr, dangling))} do not lead to the output {self._output!r} (dangling); "
                "remove them or make one of them the output"
            )
        if INPUT not in needed:
            raise GraphError(f"the output {self._output!r} does not depend on {INPUT!r}")
        for node in self._nodes.values():
            node.layer.name = node.name
        self._consumers = {INPUT: []}
        for n in self._nodes:
            self._consumers[n] = []
        for node in self._nodes.values():
            for i in node.inputs:
                if node.name not in self._consumers[i]:
                    self._consumers[i].append(node.name)
        if input_shape is not None:
            self.forward(np.zeros((1,) + tuple(input_shape)))

    def _ancestors(self, name):
        """Names of ``name`` and every node (and the input) it depends on."""
        out, stack = set(), [name]
        while stack:
            n = stack.pop()
            if n in out:
                continue
            out.add(n)
            if n != INPUT:
                stack.extend(self._nodes[n].inputs)
        return out

    # -- container ------------------------------------------------------------------------------
    @property
    def output(self):
        """Name of the output node."""
        return self._output

    @property
    def order(self):
        """Node names in topological order (the input excluded)."""
        return list(self._nodes)

    names = order

    @property
    def layers(self):
        """Layers in topological order."""
        return [node.layer for node in self._nodes.values()]

    def node(self, name):
        """The :class:`Node` called ``name``."""
        self._check_name(name)
        return self._nodes[name]

    def inputs_of(self, name):
        """Names of the nodes feeding ``name``."""
        return self.node(name).inputs

    def consumers(self, name):
        """Names of the nodes fed by ``name`` (``"input"`` allowed)."""
        if name != INPUT:
            self._check_name(name)
        return list(self._consumers[name])

    def _check_name(self, name):
        if not isinstance(name, str):
            raise TypeError(f"nodes are named by strings, got {type(name).__name__}")
        if name not in self._nodes:
            raise KeyError(f"no layer named {name!r}; nodes are: {', '.join(self._nodes)}")

    def index(self, key):
        """Position in the topological order of a node given by name, index or layer object."""
        names = list(self._nodes)
        if isinstance(key, Layer):
            for i, node in enumerate(self._nodes.values()):
                if node.layer is key:
                    return i
            raise KeyError(f"layer {key!r} is not in this model")
        if isinstance(key, str):
            self._check_name(key)
            return names.index(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            n = len(names)
            if not -n <= key < n:
                raise IndexError(f"layer index {key} out of range for a model of {n} layers")
            return int(key) % n
        raise TypeError(f"layers are indexed by name or int, got {type(key).__name__}")

    def name_of(self, key):
        """The node name of ``key`` (a name, an index in topological order, or a layer object)."""
        if isinstance(key, str):
            self._check_name(key)
            return key
        return list(self._nodes)[self.index(key)]

    def __getitem__(self, key):
        if isinstance(key, str):  # by name: a dict lookup, not a walk of the order
            self._check_name(key)
            return self._nodes[key].layer
        return self.layers[self.index(key)]

    def __contains__(self, name):
        return name in self._nodes

    def __len__(self):
        return len(self._nodes)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = ",\n".join(f"  ({n}): {node.layer!r} <- {', '.join(node.inputs)}" for n, node in self._nodes.items())
        return f"{type(self).__name__}(\n{inner}\n)  -> {self._output}"

    def triples(self):
        """The nodes as ``(name, layer, inputs)`` triples in topological order (what the constructor takes)."""
        return [(n, node.layer, node.inputs if len(node.inputs) > 1 else node.inputs[0])
                for n, node in self._nodes.items()]

    def rebuild(self, layers=None, remove=None, share=False):
        """A new model of this structure with some layers replaced and some nodes bypassed.

        Parameters
        ----------
        layers : dict ``{name: Layer}``, optional
            New layers for these nodes (shapes are the caller's responsibility).
        remove : iterable of names, optional
            Single-input nodes to bypass: their consumers take the removed node's input instead.
        share : bool
            Default False: the layers not replaced are deep-copied, so the new model shares no state with this
            one.  True: they are this model's own layer objects (a short-lived execution plan, as
            :func:`xattr.nn.gradient_plan`; changing one changes both models).
        """
        layers, remove = dict(layers or {}), set(remove or ())
        for n in list(layers) + list(remove):
            self._check_name(n)
        for n in remove:
            node = self._nodes[n]
            if len(node.inputs) != 1:
                raise GraphError(f"only single-input nodes can be bypassed; {n!r} has inputs {node.inputs}")
            if n == self._output:
                raise GraphError(f"the output node {n!r} cannot be bypassed")

        def resolve(i):
            while i in remove:
                i = self._nodes[i].inputs[0]
            return i

        triples = []
        for n, node in self._nodes.items():
            if n in remove:
                continue
            layer = layers[n] if n in layers else (node.layer if share else copy.deepcopy(node.layer))
            ins = tuple(resolve(i) for i in node.inputs)
            triples.append((n, layer, ins if len(ins) > 1 else ins[0]))
        return self._from_triples(triples, self._output)

    def _from_triples(self, triples, output):
        return Graph(triples, output=output)

    # -- forward ----------------------------------------------------------------------------------
    def _check_input(self, x):
        return as_float_array(x, "x")

    def trace(self, x, stop=None, start=None):
        """Run the graph on ``x`` keeping each node's input, output and cache: a :class:`Tape`.

        ``stop``: a node name; only the nodes it depends on are run (its output is ``tape.output``).
        ``start``: a node name whose output ``x`` is (instead of the model input); the node must be a cut
        (every path from the input to ``stop`` passes through it), and ``tape.pull`` then ends there.
        """
        x = self._check_input(x)
        target = self._output if stop is None else self.name_of(stop)
        keep = self._ancestors(target)
        source = INPUT if start is None else self.name_of(start)
        if source != INPUT:
            if source not in keep:
                raise ValueError(f"node {source!r} does not lead to {target!r}")
            keep = keep - self._ancestors(source)
        names = [n for n in self._nodes if n in keep]
        return self.run({source: x}, names, target=target, source=source)

    def run(self, env, names, tangents=None, target=None, source=INPUT):
        """Run the nodes ``names`` (in topological order) on the values in ``env`` ``{name: array}``.

        Returns a :class:`Tape` of those nodes (``env`` gains their outputs).  With ``tangents``
        ``{name: array}`` for the values in ``env``, each node's ``jvp`` runs too and ``tangents`` gains
        theirs (the forward-mode walk along a direction, in the same pass).
        """
        records = {}
        for n in names:
            node = self._nodes[n]
            missing = [i for i in node.inputs if i not in env]
            if missing:
                raise ValueError(
                    f"node {n!r} needs {', '.join(map(repr, missing))}, which this run does not provide "
                    f"(start from a node that every path passes through)"
                )
            records[n] = _run_node(node, env)
            if tangents is not None:
                args = tuple(tangents[i] for i in node.inputs)
                tangents[n] = node.layer.jvp(args[0] if node.layer.arity == 1 else args, records[n].cache)
        x = env.get(source)
        return Tape(self, x, records, target if target is not None else (names[-1] if names else source), source)

    def forward(self, x):
        """Scores ``(N, K)`` for images ``(N, C, H, W)``; intermediate outputs are freed once used."""
        x = self._check_input(x)
        env = {INPUT: x}
        last_use = self._last_use()
        for k, node in enumerate(self._nodes.values()):
            _run_node(node, env)
            for i in set(node.inputs):
                if last_use[i] == k and i != self._output:
                    del env[i]
        return env[self._output]

    __call__ = forward

    def _last_use(self):
        pos = {n: k for k, n in enumerate(self._nodes)}
        last = {INPUT: -1}
        for n, node in self._nodes.items():
            last.setdefault(n, pos[n])
            for i in node.inputs:
                last[i] = max(last.get(i, -1), pos[n])
        return last

    def activations(self, x, node):
        """Output of ``node`` for input ``x``."""
        return self.trace(x, stop=node).output

    # -- backward ---------------------------------------------------------------------------------
    def vjp(self, x, grad_scores, rule="gradient", **options):
        """Vector-Jacobian product (generalised by ``rule``): ``(N, K)`` -> ``x.shape``."""
        tape = self.trace(x)
        g = as_float_array(grad_scores, "grad_scores").astype(tape.output.dtype, copy=False)
        if g.shape != tape.output.shape:
            raise ValueError(f"grad_scores must have the scores' shape {tape.output.shape}, got {g.shape}")
        return tape.pull(g, rule, **options)

    def param_grads(self, x, grad_scores):
        """Input gradient and parameter gradients of ``<grad_scores, model(x)>``.

        Returns ``(grad_x, {node name: {"weight": dW, "bias": db}})`` (the gradient rule).
        """
        tape = self.trace(x)
        g = as_float_array(grad_scores, "grad_scores").astype(tape.output.dtype, copy=False)
        grads = {}

        def collect(name, rec, gout):
            pg = self[name].param_grads(gout, rec.cache)
            if pg:
                grads[name] = pg

        gx = tape.pull(g, "gradient", taps={n: collect for n in self._nodes})
        return gx, OrderedDict((n, grads[n]) for n in reversed(self._nodes) if n in grads)

    def supports(self, rule):
        """True if every layer implements ``rule`` (own or inherited)."""
        return all(layer.has_rule(rule) for layer in self.layers)


def _toposort(given):
    """Names in a topological order that keeps the given order where it is free; cycles are reported."""
    done, order = {INPUT}, []
    pending = list(given)
    while pending:
        for k, n in enumerate(pending):
            if all(i in done for i in given[n].inputs):
                order.append(n)
                done.add(n)
                del pending[k]
                break
        else:
            raise GraphError(f"the graph has a cycle through node(s) {', '.join(map(repr, _cycle(given, pending)))}")
    return order


def _cycle(given, pending):
    """One cycle among the pending nodes, as a list of names."""
    pend = set(pending)
    n, path = pending[0], []
    while n not in path:
        path.append(n)
        n = next(i for i in given[n].inputs if i in pend)
    return path[path.index(n):] + [n]


def _run_node(node, env):
    args = tuple(env[i] for i in node.inputs)
    xin = args[0] if node.layer.arity == 1 else args
    y, cache = node.layer.forward(xin)
    env[node.name] = y
    return Cache(x=xin, y=y, cache=cache)


class Tape:
    """The record of one forward pass through a :class:`Graph` (see the module docstring).

    ``tape[name]`` is the node's record ``Cache(x=input or tuple of inputs, y=output, cache=layer cache)``;
    ``tape.x`` the model input; ``tape.output`` the output of the node the trace ran to.
    """

    def __init__(self, graph, x, records, target, source=INPUT):
        self.graph, self.x, self.records, self.target, self.source = graph, x, records, target, source

    def __getitem__(self, name):
        if name == self.source and name not in self.records:
            return Cache(x=None, y=self.x, cache=None)
        if name not in self.records:
            self.graph._check_name(name)
            raise KeyError(f"node {name!r} was not run by this trace (it does not lead to {self.target!r})")
        return self.records[name]

    def __contains__(self, name):
        return name == self.source or name in self.records

    @property
    def output(self):
        return self[self.target].y

    def value(self, name):
        """Output of node ``name`` (``"input"``: the model input)."""
        return self[name].y

    # -- the backward walk --------------------------------------------------------------------------
    def pull(self, seed, rule="gradient", *, at=None, to=None, taps=None, **options):
        """Propagate ``seed`` from the output of node ``at`` back through the graph with ``rule``.

        Parameters
        ----------
        seed : ndarray, or dict ``{name: ndarray}``
            Shaped like node ``at``'s output (default: the traced output, e.g. scores ``(N, K)``); a dict
            seeds several nodes at once.
        rule : str or callable
            A column of the rule table for every node, or a composite ``rule(name, layer) -> (rule name,
            options dict)``; options it returns are merged over ``options``.  A cell receives only the
            options its function names (``inp``/``ref``/``split``: the node's records, when given).
        at : str, optional
            The node whose output receives ``seed``.
        to : str or list of str, optional
            Return what arrives at these nodes' outputs (a dict for a list; the walk ends at the earliest one,
            so a node downstream of another gets its complete gradient too); default the
            trace's source (the model input).  A node with no path to ``at`` gets zeros (None if the
            tape holds no value for it).
        taps : dict ``{name: fn(name, record, g)}``, optional
            Called with the complete gradient ``g`` at the node's output, before its rule runs; a tap
            that returns something other than None replaces ``g``.  ``"input"`` may be tapped too.
        **options
            Options of the rule (e.g. ``epsilon``).  An option that no cell of the walk takes is an error
            naming it and the options the walk's cells take.

        Returns
        -------
        ndarray (or a dict of them): the propagated quantity at ``to`` (default: ``x.shape``).
        """
        graph = self.graph
        if isinstance(seed, dict):
            seeds = {graph.name_of(k): v for k, v in seed.items()}
        else:
            seeds = {self.target if at is None else graph.name_of(at): seed}
        default = [self.source]
        stops = default if to is None else ([to] if isinstance(to, str) else list(to))
        for s_ in stops:
            if s_ != INPUT:
                graph._check_name(s_)
        names = list(graph._nodes)
        top = max(names.index(k) for k in seeds)
        first_stop = min(-1 if s_ == INPUT else names.index(s_) for s_ in stops)
        walk = [n for n in reversed(names[first_stop + 1 : top + 1]) if n in self.records]
        cells = self._cells(walk, rule, options)
        taps = taps or {}
        grads = dict(seeds)
        results = {}
        for n in walk:
            g = grads.pop(n, None)
            if g is None:
                continue
            if n in taps:
                out = taps[n](n, self.records[n], g)
                if out is not None:
                    g = out
            if n in stops:  # record what arrived and go on: an earlier stop gets the paths through this one too
                results[n] = g
            node = graph._nodes[n]
            fn, opts = cells[n]
            gin = fn(node.layer, g, self.records[n].cache, **opts)
            if node.layer.arity == 1:
                grads[node.inputs[0]] = _accumulate(grads.get(node.inputs[0]), gin)
            else:
                if not isinstance(gin, (tuple, list)) or len(gin) != len(node.inputs):
                    raise RuntimeError(
                        f"{node.layer.describe()} returned {type(gin).__name__} for {len(node.inputs)} inputs"
                    )
                for i, gi in zip(node.inputs, gin):
                    grads[i] = _accumulate(grads.get(i), gi)
        for s_ in stops:
            if s_ in results:
                continue
            g = grads.get(s_)
            if s_ in taps and g is not None:
                out = taps[s_](s_, self[s_] if s_ in self else None, g)
                if out is not None:
                    g = out
            if g is None and s_ in self:
                like = self[s_].y
                g = None if like is None else np.zeros_like(like)
            results[s_] = g
        if to is None:
            return results[self.source]
        return results[to] if isinstance(to, str) else results

    def _cells(self, walk, rule, options):
        """``{name: (cell function, its options)}`` for the walk, checked before any arithmetic."""
        cells, used = {}, set()
        takes = set()
        for n in walk:
            layer = self.graph._nodes[n].layer
            if callable(rule):
                name, extra = rule(n, layer)
                opts = {**options, **(extra or {})}
            else:
                name, opts = rule, options
            fn = layer.rule(name)  # RuleNotDefined names the layer and the rule
            names, anyk = option_names(fn)
            takes.update(k for k in names if k not in CONTEXT_OPTIONS)
            if anyk:
                passed = dict(opts)
                used.update(opts)
            else:
                passed = {k: v for k, v in opts.items() if k in names}
                used.update(passed)
            cells[n] = (fn, passed)
        unknown = [k for k in options if k not in used and k not in CONTEXT_OPTIONS]
        if unknown:
            rname = rule if isinstance(rule, str) else "of this composite"
            raise TypeError(
                f"no layer's rule {rname!r} takes the option(s) {', '.join(map(repr, unknown))}; "
                f"the rules of this walk take: {', '.join(sorted(takes)) or 'no options'}"
            )
        return cells

    # -- the forward-mode walk ------------------------------------------------------------------------
    def push(self, direction, to=None):
        """Derivatives along ``direction`` (shaped like the input) of every node, by each layer's ``jvp``.

        For piecewise-linear layers this is the linear part at the traced pattern.  Returns the tangent at
        ``to`` (default: the traced output), or a dict ``{name: tangent}`` for every run node if ``to="all"``.
        """
        env = {self.source: direction}
        for n in self.graph._nodes:
            if n not in self.records:
                continue
            node = self.graph._nodes[n]
            args = tuple(env[i] for i in node.inputs)
            env[n] = node.layer.jvp(args[0] if node.layer.arity == 1 else args, self.records[n].cache)
        if to == "all":
            return env
        return env[self.target if to is None else self.graph.name_of(to)]


class Sequential(Graph):
    """A chain of named layers: a :class:`Graph` where each layer takes the previous one's output.

    Parameters
    ----------
    *layers : Layer, or (name, Layer) pairs
        Unnamed layers are named ``<type><k>`` (``conv1``, ``relu1``, ``dense1``, ...).

    Layers are reached by name (``model["conv3"]``) or index (``model[0]``).
    """

    def __init__(self, *layers):
        named, counters = [], {}
        for item in layers:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                name, layer = item
            else:
                layer = item
                if not isinstance(layer, Layer):
                    raise TypeError(f"Sequential takes Layer objects or (name, Layer) pairs, got {item!r}")
                prefix = getattr(type(layer), "short_name", type(layer).__name__.lower())
                counters[prefix] = counters.get(prefix, 0) + 1
                name = f"{prefix}{counters[prefix]}"
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {name!r} is not a Layer: {layer!r}")
            if layer.arity != 1:
                raise TypeError(f"{type(layer).__name__} merges several inputs: build the model as an xattr.nn.Graph")
            if any(name == n for n, _ in named):
                raise ValueError(f"duplicate layer name {name!r}")
            named.append((name, layer))
        if not named:
            raise ValueError("Sequential needs at least one layer")
        triples, prev = [], INPUT
        for name, layer in named:
            triples.append((name, layer, prev))
            prev = name
        try:
            super().__init__(triples)
        except GraphError as e:
            raise ValueError(str(e)) from None

    def _from_triples(self, triples, output):
        chain = all(t[2] == (triples[k - 1][0] if k else INPUT) for k, t in enumerate(triples))
        if chain and triples[-1][0] == output:
            return Sequential(*[(n, layer) for n, layer, _ in triples])
        return Graph(triples, output=output)

    def __repr__(self):
        inner = ",\n".join(f"  ({n}): {node.layer!r}" for n, node in self._nodes.items())
        return f"Sequential(\n{inner}\n)"

    # -- the chain's conveniences, written on the trace and the walk --------------------------------
    def forward_all(self, x, stop=None):
        """Run the layers ``[0, stop)``; returns ``(output of the last layer run, [cache per layer])``."""
        x = self._check_input(x)
        stop = len(self) if stop is None else stop
        if stop == 0:
            return x, []
        tape = self.trace(x, stop=self.order[stop - 1])
        return tape.output, [tape[n].cache for n in self.order[:stop]]

    def backward(self, g, caches, rule="gradient", start=None, stop=0, **options):
        """Propagate ``g`` from the output of layer ``start - 1`` to the input of layer ``stop``.

        ``start`` defaults to the number of cached layers.  ``rule`` is a rule name or a
        callable ``(index, layer) -> (rule name, options dict)`` (a composite).
        """
        start = len(caches) if start is None else start
        if start <= stop:
            return g
        names = self.order
        records = {n: Cache(x=None, y=None, cache=c) for n, c in zip(names, caches) if c is not None}
        tape = Tape(self, None, records, names[start - 1])
        if callable(rule):
            pos = {n: k for k, n in enumerate(names)}
            composite = rule

            def rule(name, layer):  # noqa: F811 - the chain's composites take positions
                return composite(pos[name], layer)

        return tape.pull(g, rule, to=None if stop == 0 else names[stop - 1], **options)
