"""DyNet's XOR tutorial, one example per graph: renew_cg, tanh(W x + b), logistic(V h + a),
binary_log_loss, forward, backward, SGD update (an 11-node graph: per-node overhead decides)."""
UNIT = "examples/s"
CONFIGS = [{"hidden": 8}]

DATA = [((0.0, 0.0), 0.0), ((0.0, 1.0), 1.0), ((1.0, 0.0), 1.0), ((1.0, 1.0), 0.0)]


def make(dy, hidden):
    m = dy.ParameterCollection()
    W = m.add_parameters((hidden, 2))
    b = m.add_parameters(hidden)
    V = m.add_parameters((1, hidden))
    a = m.add_parameters(1)
    trainer = dy.SimpleSGDTrainer(m)
    it = [0]

    def step():
        (x1, x2), label = DATA[it[0] % 4]
        it[0] += 1
        dy.renew_cg()
        x = dy.inputVector([x1, x2])
        y = dy.scalarInput(label)
        h = dy.tanh(dy.parameter(W) * x + dy.parameter(b))
        y_pred = dy.logistic(dy.parameter(V) * h + dy.parameter(a))
        loss = dy.binary_log_loss(y_pred, y)
        loss.scalar_value()
        loss.backward()
        trainer.update()
        return 1

    step.model = m   # the reference's trainer dangles if its collection is garbage-collected
    return step
