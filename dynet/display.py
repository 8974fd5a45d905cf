"""Pictures of the computation graph for notebooks: dy.render_graph().

print_graphviz() prints DOT text, as DyNet does. render_graph() returns an object that Jupyter shows
as a picture (SVG, drawn by Graphviz through the optional `graphviz` package: `pip install
dynet-py[graphviz]` plus the system's `dot` program) and anything else shows as a readable list of
the graph's nodes, which is also what a notebook shows when Graphviz is absent.
"""
import re

from dynet.core import graph as _graph

_LABEL = re.compile(r'^\s*N\d+ \[label="(.*)"\];$')


class GraphDrawing:
    """A snapshot of the computation graph: its DOT text, an SVG picture where Graphviz is installed.

    Attributes:
        source (str): the graph in Graphviz's DOT language (what print_graphviz() prints)
    """

    def __init__(self, source):
        self.source = source
        self._svg = None
        self._why_no_svg = None

    def nodes(self):
        """The nodes as text, one "vN = operation(arguments) {dimensions}" line each (list of str)."""
        return [m.group(1).replace('\\"', '"').replace("\\n", ": ")
                for m in map(_LABEL.match, self.source.splitlines()) if m]

    def svg(self):
        """The picture as SVG text, or None where Graphviz (the `graphviz` package or `dot`) is absent."""
        if self._svg is None and self._why_no_svg is None:
            try:
                import graphviz
            except ImportError:
                self._why_no_svg = "the graphviz package is not installed (pip install graphviz)"
                return None
            try:
                self._svg = graphviz.Source(self.source).pipe(format="svg", encoding="utf-8")
            except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError) as e:
                self._why_no_svg = f"Graphviz could not draw it ({type(e).__name__}: {e})"
        return self._svg

    def _repr_svg_(self):
        return self.svg()

    def __str__(self):
        lines = self.nodes()
        text = [f"computation graph, {len(lines)} node{'s' if len(lines) != 1 else ''}:"]
        text += ["  " + line for line in lines]
        return "\n".join(text)

    def __repr__(self):
        text = str(self)
        if self.svg() is None:
            text += f"\n(no picture: {self._why_no_svg})"
        return text

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))


def render_graph(compact=False, show_dims=True, expression_names=None):
    """Draw the current computation graph (for Jupyter notebooks).

    Unlike print_graphviz, which draws only under --dynet-viz as in DyNet, this works in every mode.

    Args:
        compact (bool): label nodes with their operation alone (no argument names)
        show_dims (bool): add each node's dimensions to its label
        expression_names (dict): {Expression: name} to label chosen nodes

    Returns:
        GraphDrawing: displayed as an SVG picture in a notebook where Graphviz is installed (the
        `graphviz` Python package and the `dot` program), otherwise as a list of the nodes,
        "v2 = v1 * v0 {3}" per line. Its `source` attribute is the DOT text print_graphviz() prints.
    """
    return GraphDrawing(_graph.cg().print_graphviz(compact, show_dims, expression_names))
