"""Notebook 03's exercises: each worked solution, applied as its Solutions section writes it, does
what the solution says."""

from __future__ import annotations

import pytest
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "03_model.ipynb"
WIDE = """wide = ReferenceCNN()
wide.conv1 = nn.Conv2d(1, 32, kernel_size=5, padding=2)  # replaces the 3×3 layer
shape = tuple(wide.conv1(torch.zeros(1, 1, 28, 28)).shape[1:])
print(
    f"conv1: {shape}, {models.count_parameters(wide.conv1):,} parameters; "
    f"the network: {models.count_parameters(wide):,}"
)"""

FIELD = """field, jump = 1, 1  # input pixels one number sees, and the step between two neighbours
for name, kernel, step in [("conv1", 3, 1), ("pool", 2, 2), ("conv2", 3, 1), ("pool", 2, 2)]:
    field, jump = field + (kernel - 1) * jump, jump * step
    print(f"after {name}: each number sees {field}×{field} pixels, neighbours {jump} apart")"""

GAP = '''class AveragedCNN(ReferenceCNN):
    """The reference CNN with fc1 fed by the average of each of the 64 maps."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)

    def forward(self, x):
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = x.mean(dim=(2, 3))  # global average pooling: 64 numbers per image
        x = self.dropout(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


averaged = AveragedCNN()
print(
    f"{models.count_parameters(averaged):,} parameters, "
    f"{total - models.count_parameters(averaged):,} fewer; "
    f"output {tuple(averaged(torch.zeros(2, 1, 28, 28)).shape)}"
)'''

THIRD = '''class ThreeBlockCNN(ReferenceCNN):
    """The reference CNN with a third conv block, 64 → 128 channels."""

    def __init__(self):
        super().__init__()
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)  # 64×7×7 → 128×7×7
        self.fc1 = nn.Linear(128 * 3 * 3, 128)  # the third pool: 7 → 3 (7 // 2)

    def forward(self, x):
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = F.relu(self.pool(self.conv3(x)))  # 128×3×3
        x = torch.flatten(x, 1)
        x = self.dropout(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


three = ThreeBlockCNN()
h = torch.zeros(1, 1, 28, 28)
for conv in [three.conv1, three.conv2, three.conv3]:
    h = F.relu(three.pool(conv(h)))
    print(f"after the block of {conv.out_channels} channels: {tuple(h.shape[1:])}")
print(f"{models.count_parameters(three):,} parameters, fc1 takes {three.fc1.in_features:,} inputs")
assert models.count_parameters(three) == models.count_parameters(models.CNN((32, 64, 128)))'''


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, WIDE, FIELD, GAP, THIRD)


# the receptive field measured: the pixels whose gradient reaches one position of the 7×7 maps,
# over random images (max-pooling passes each image's gradient to one pixel of its window)
MEASURED = """seen = torch.zeros(28, 28)
for seed in range(20):
    torch.manual_seed(seed)
    image = torch.randn(1, 1, 28, 28, requires_grad=True)
    feature_maps(ReferenceCNN(), image)[1][0, :, 3, 3].sum().backward()
    seen += image.grad[0, 0].abs()
print("seen:", len(seen.sum(1).nonzero()), len(seen.sum(0).nonzero()))
print("three blocks:", tuple(three(torch.zeros(2, 1, 28, 28)).shape))"""


def test_a_wider_kernel_the_receptive_field_average_pooling_and_a_third_block(tmp_path):
    out = printed(run(NB, tmp_path, append=(WIDE, FIELD, GAP, THIRD, MEASURED)))
    assert "conv1: (32, 28, 28), 832 parameters; the network: 422,154" in out
    assert "after pool: each number sees 10×10 pixels, neighbours 4 apart" in out
    assert "seen: 10 10" in out, "the formula's field is the one the gradient reaches"
    assert "28,426 parameters, 393,216 fewer; output (2, 10)" in out
    assert "after the block of 128 channels: (128, 3, 3)" in out
    assert "241,546 parameters, fc1 takes 1,152 inputs" in out
    assert "three blocks: (2, 10)" in out
