import torch
import torch.nn.functional as F

X = torch.tensor([[1., 1.], [0., 1.], [1., 0.], [0., 0.]])
Y = torch.tensor([0., 1., 1., 0.])

w1 = torch.tensor([[0.1, -0.1], [-0.1, 0.1]], requires_grad=True)
b1 = torch.tensor([0.1, -0.1], requires_grad=True)
w2 = torch.tensor([0.1, -0.1], requires_grad=True)
b2 = torch.tensor(0.1, requires_grad=True)
opt = torch.optim.SGD([w1, b1, w2, b2], lr=0.4)

for epoch in range(1000):
    total = 0.0
    for i in range(4):
        h = torch.sigmoid(F.linear(X[i], w1, b1))
        out = torch.sigmoid(F.linear(h, w2, b2))
        loss = F.binary_cross_entropy(out, Y[i])
        opt.zero_grad()
        loss.backward()
        if epoch == 0 and i == 0:
            print("first-step gradients:", w1.grad, b1.grad, w2.grad, b2.grad)
        opt.step()
        if epoch == 0 and i == 0:
            print("first-step weights:", w1, b1, w2, b2)
        total += loss.item()
    if epoch % 100 == 0 or epoch == 999:
        print(f"epoch {epoch:4d}  loss {total / 4:.4f}")

with torch.no_grad():
    preds = [torch.sigmoid(F.linear(torch.sigmoid(F.linear(x, w1, b1)), w2, b2)).item() for x in X]
print("predictions:", [round(p, 3) for p in preds])
