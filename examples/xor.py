"""The classic DyNet XOR tutorial: a two-layer network learns XOR; the loss falls under 0.01."""
import dynet as dy

m = dy.ParameterCollection()
W = m.add_parameters((8, 2))
b = m.add_parameters(8)
V = m.add_parameters((1, 8))
a = m.add_parameters(1)
trainer = dy.SimpleSGDTrainer(m)

x = dy.vecInput(2)
y = dy.scalarInput(0)
h = dy.tanh(W * x + b)
y_pred = dy.logistic(V * h + a)
loss = dy.binary_log_loss(y_pred, y)

data = [((0, 0), 0), ((0, 1), 1), ((1, 0), 1), ((1, 1), 0)]
for epoch in range(2000):
    total = 0.0
    for (x1, x2), label in data:
        x.set([x1, x2])
        y.set(label)
        total += loss.scalar_value(recalculate=True)
        loss.backward()
        trainer.update()
    if epoch % 200 == 0 or epoch == 1999:
        print(f"epoch {epoch:3d}  average loss {total / len(data):.5f}")

for (x1, x2), label in data:
    x.set([x1, x2])
    print(f"{x1} xor {x2} = {y_pred.scalar_value(recalculate=True):.3f}  (expected {label})")
print("final average loss", total / len(data))
