"""User objects following DyNet's save protocol (param_collection(), spec, from_spec), shared by
the io tests. Written against whichever DyNet module builds them (ours or the reference), so a file
saved by one loads in the other."""


class OneLayerMLP:
    """DyNet's saving tutorial's example: the spec holds the activation function."""

    def __init__(self, model, din, dout, act):
        self.spec = (din, dout, act)
        self.act = act
        self.pc = model.add_subcollection("mlp")
        self.W = self.pc.add_parameters((dout, din))

    def param_collection(self):
        return self.pc

    @staticmethod
    def from_spec(spec, model):
        return OneLayerMLP(model, *spec)

    def __call__(self, x):
        return self.act(self.W * x)
