"""Rotations of cubes and Fourier masks (refine step 3)."""
import numpy as np
import pytest
import torch

from isonet2core.imaging import wedge
from isonet2core.training import rotations as rt

N = 16


def _wedge(tmin=-60.0, tmax=60.0, n=N):
    return wedge.wedge_mask((n, n, n), tmin, tmax)


def test_there_are_24_distinct_proper_cube_rotations():
    mats = [r.matrix() for r in rt.CUBE_ROTATIONS]
    assert len(mats) == 24
    for m in mats:
        assert np.allclose(m @ m.T, np.eye(3)) and np.isclose(np.linalg.det(m), 1.0)
    assert len({m.astype(int).tobytes() for m in mats}) == 24
    assert np.allclose(mats[0], np.eye(3))


def test_wedge_moving_set_every_member_moves_none_equal_none_missing():
    m = _wedge()
    moving = [r for r in rt.CUBE_ROTATIONS if not torch.equal(rt.rotate_fourier_mask_90(m, r), m)]
    # derived: the Klein four-group {I, 180 z, 180 y, 180 x} keeps a symmetric wedge about y
    assert len(rt.WEDGE_MOVING_ROTATIONS) == 20 and len(rt.WEDGE_KEEPING_ROTATIONS) == 4
    assert set(rt.WEDGE_MOVING_ROTATIONS) == set(moving)           # every member moves, none missing
    assert len(set(rt.WEDGE_MOVING_ROTATIONS)) == 20               # no two equal
    rotated = {rt.rotate_fourier_mask_90(m, r).numpy().tobytes() for r in rt.WEDGE_MOVING_ROTATIONS}
    assert m.numpy().tobytes() not in rotated
    for r in rt.WEDGE_KEEPING_ROTATIONS:
        assert torch.equal(rt.rotate_fourier_mask_90(m, r), m)
    # each moving rotation exposes a sizeable part of the missing wedge to the loss
    for r in rt.WEDGE_MOVING_ROTATIONS:
        gained = ((1 - m) * rt.rotate_fourier_mask_90(m, r)).mean()
        assert gained > 0.05


def test_moving_rotations_also_move_asymmetric_wedges():
    m = _wedge(-50.0, 40.0)
    for r in rt.WEDGE_MOVING_ROTATIONS:
        assert not torch.equal(rt.rotate_fourier_mask_90(m, r), m)


def test_mask_rotation_matches_the_rotated_volume_spectrum():
    """The spectrum of a rotated wedge-filtered volume lies inside the rotated mask."""
    rng = np.random.default_rng(0)
    m = _wedge()
    v = torch.from_numpy(rng.standard_normal((N, N, N)).astype(np.float32))
    filtered = torch.fft.ifftn(m * torch.fft.fftn(v)).real
    for r in rt.CUBE_ROTATIONS:
        spec = torch.fft.fftn(rt.rotate_cube_90(filtered, r)).abs()
        rm = rt.rotate_fourier_mask_90(m, r)
        assert float(spec[rm == 0].max()) < 1e-3 * float(spec.max())
        assert float(spec[rm == 1].mean()) > 0.1 * float(spec.max())


def test_90_degree_rotation_agrees_with_its_matrix_and_with_the_arbitrary_path():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((3, 1, N, N, N)).astype(np.float32))
    for r in rt.CUBE_ROTATIONS:
        exact = rt.rotate_cube_90(x, r)
        interp = rt.rotate_volumes_arbitrary(x, torch.as_tensor(np.stack([r.matrix()] * 3), dtype=torch.float32))
        assert torch.allclose(exact, interp, atol=1e-4)
        # a point mass moves where the matrix says (centred coordinates)
        p = np.array([2.5, -3.5, 4.5])  # centred coordinates of a voxel (centre 7.5)
        vol = torch.zeros(N, N, N)
        c = (N - 1) / 2
        vol[tuple(np.round(p + c).astype(int))] = 1.0
        q = r.matrix() @ p + c
        assert rt.rotate_cube_90(vol, r)[tuple(np.round(q).astype(int))] == 1.0


def test_90_degree_mask_rotation_agrees_with_wedge_rotate_fourier_mask():
    n = 17  # odd size: the grid maps onto itself, the interpolating rotation is exact too
    m = _wedge(-45.0, 55.0, n)
    for r in rt.CUBE_ROTATIONS:
        assert torch.allclose(rt.rotate_fourier_mask_90(m, r), wedge.rotate_fourier_mask(m, r.matrix()), atol=1e-5)


def test_random_rotations_are_uniform_and_proper():
    rng = np.random.default_rng(2)
    mats = np.stack([rt.random_rotation_matrix(rng) for _ in range(2000)])
    assert np.allclose(mats @ mats.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(mats), 1.0)
    # Haar measure: the image of any fixed axis is uniform on the sphere (mean 0, E[z^2] = 1/3)
    axis = mats[:, :, 0]
    assert np.abs(axis.mean(axis=0)).max() < 0.05
    assert abs((axis[:, 0] ** 2).mean() - 1 / 3) < 0.03


def test_random_rotation_angles_follow_the_chosen_distribution():
    """--random_rot_angle: haar has rotation-angle density (1 - cos t) / pi on [0, pi] (mean
    pi / 2 + 2 / pi, P(t < pi / 4) = (pi / 4 - sin(pi / 4)) / pi = 0.025); uniform (the IsoNet2
    program's axis and angle) has it uniform on [0, pi] (mean pi / 2, P(t < pi / 4) = 0.25)."""
    def angles(kind):
        rng = np.random.default_rng(3)
        mats = np.stack([rt.random_rotation_matrix(rng, kind) for _ in range(4000)])
        assert np.allclose(mats @ mats.transpose(0, 2, 1), np.eye(3), atol=1e-9)
        assert np.allclose(np.linalg.det(mats), 1.0)
        return np.arccos(np.clip((np.trace(mats, axis1=1, axis2=2) - 1) / 2, -1, 1))
    haar, uniform = angles("haar"), angles("uniform")
    assert abs(haar.mean() - (np.pi / 2 + 2 / np.pi)) < 0.03
    assert abs((haar < np.pi / 4).mean() - 0.025) < 0.01
    assert abs(uniform.mean() - np.pi / 2) < 0.03
    assert abs((uniform < np.pi / 4).mean() - 0.25) < 0.025
    drawn = rt.sample_rotations(400, np.random.default_rng(1), 1.0, angle="uniform")
    t = np.array([np.arccos(np.clip((np.trace(rt.rotation_matrix(r)) - 1) / 2, -1, 1)) for r in drawn])
    assert (t < np.pi / 4).mean() > 0.15
    with pytest.raises(ValueError, match="angle"):
        rt.random_rotation_matrix(np.random.default_rng(0), "gaussian")


def test_sample_rotations_is_seeded_and_honours_the_weight():
    a = rt.sample_rotations(400, np.random.default_rng(5), 0.25)
    b = rt.sample_rotations(400, np.random.default_rng(5), 0.25)
    assert all(np.array_equal(rt.rotation_matrix(p), rt.rotation_matrix(q)) for p, q in zip(a, b))
    n_arbitrary = sum(not isinstance(r, rt.CubeRotation) for r in a)
    assert 60 < n_arbitrary < 140
    assert all(r in rt.WEDGE_MOVING_ROTATIONS for r in a if isinstance(r, rt.CubeRotation))
    assert all(isinstance(r, rt.CubeRotation) for r in rt.sample_rotations(50, np.random.default_rng(0), 0.0))
    with pytest.raises(ValueError):
        rt.sample_rotations(1, np.random.default_rng(0), 1.5)


def test_batched_rotation_of_volumes_and_masks_mixes_both_kinds():
    rng = np.random.default_rng(4)
    rots = [rt.WEDGE_MOVING_ROTATIONS[3], rt.random_rotation_matrix(rng), rt.WEDGE_MOVING_ROTATIONS[7]]
    x = torch.from_numpy(rng.standard_normal((3, 1, N, N, N)).astype(np.float32))
    out = rt.rotate_volumes(x, rots)
    assert torch.equal(out[0], rt.rotate_cube_90(x[0], rots[0]))
    assert torch.equal(out[2], rt.rotate_cube_90(x[2], rots[2]))
    assert torch.allclose(out[1:2], rt.rotate_volumes_arbitrary(
        x[1:2], torch.as_tensor(rots[1][None], dtype=torch.float32)))
    # arbitrary rotation keeps most of the energy of a smooth central blob
    blob = torch.zeros(1, 1, N, N, N)
    zz, yy, xx = torch.meshgrid(*[torch.arange(N) - (N - 1) / 2] * 3, indexing="ij")
    blob[0, 0] = torch.exp(-(zz ** 2 + 2 * yy ** 2 + 0.5 * xx ** 2) / 8)
    turned = rt.rotate_volumes(blob, [rots[1]])
    assert abs(float(turned.sum() / blob.sum()) - 1) < 0.02
    masks = rt.rotate_masks(_wedge(), rots)
    assert masks.shape == (3, N, N, N)
    assert torch.equal(masks[0], rt.rotate_fourier_mask_90(_wedge(), rots[0]))
    assert 0.3 < float(masks[1].mean()) < 0.9


def test_nearest_rotation_copies_voxels_and_reflects_the_outside_in():
    """--random_rot_interp nearest: a 90-degree matrix gives the exact turn; any rotation's
    output voxels are input voxels (no blur) and none comes from outside (no zero corners),
    where trilinear leaves the corners at zero."""
    rng = np.random.default_rng(2)
    x = torch.from_numpy(1.0 + rng.random((2, 1, N, N, N)).astype(np.float32))   # all in [1, 2)
    for r in rt.CUBE_ROTATIONS[:6]:
        mats = torch.as_tensor(np.stack([r.matrix()] * 2), dtype=torch.float32)
        assert torch.equal(rt.rotate_volumes_arbitrary(x, mats, "nearest"), rt.rotate_cube_90(x, r))
    mats = torch.as_tensor(np.stack([rt.random_rotation_matrix(rng) for _ in range(2)]), dtype=torch.float32)
    near = rt.rotate_volumes_arbitrary(x, mats, "nearest")
    for i in range(2):
        assert bool(torch.isin(near[i], x[i]).all())
    assert float(near.min()) >= 1.0
    assert float(rt.rotate_volumes_arbitrary(x, mats, "trilinear").min()) == 0.0
    mixed = rt.rotate_volumes(x, [rt.CUBE_ROTATIONS[1], mats[1].numpy()], "nearest")
    assert torch.equal(mixed[1], near[1]) and torch.equal(mixed[0], rt.rotate_cube_90(x[0], rt.CUBE_ROTATIONS[1]))
    with pytest.raises(ValueError, match="interpolation"):
        rt.rotate_volumes_arbitrary(x, mats, "cubic")
