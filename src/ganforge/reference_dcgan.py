"""The reference DCGAN training loop that ganforge's speed is compared against.

THIS FILE IS A FIXED REFERENCE. NEVER TUNE IT.
It is the textbook loop of the official PyTorch DCGAN tutorial
(https://pytorch.org/tutorials/beginner/dcgan_faces_tutorial.html), written out plainly:
nn.Sequential generator and discriminator, N(0, 0.02) initialisation, nn.BCELoss on a
sigmoid output, Adam(2e-4, betas=(0.5, 0.999)), batches built on the host by a DataLoader
and copied to the device each step, label tensors made with torch.full each step, two
backward passes for D (real, then fake), the G step reusing the same fake batch, and
`.item()` on the losses every step as the tutorial's logging does. It runs in fp32 with the
default memory layout. Its worth is that it stays exactly this: a speed-up of ganforge is
measured against it, so any change here (precision, channels_last, torch.compile, fused
optimisers, removing the syncs, ...) would silently move the baseline. Improve ganforge,
not this file.

The only departures from the tutorial: the images are a fixed random tensor in [-1, 1]
held in a TensorDataset (the tutorial decodes JPEG files with ImageFolder; the speed of a
dense convolutional step does not depend on the pixel values), the loader uses no worker
processes, the number of up/down-sampling layers follows the resolution (the tutorial's
64x64 network has 4; 32x32 drops one, the layer widths ngf * 2**k / ndf * 2**k are as in
the tutorial), and the steps are timed.

    python -m ganforge.reference_dcgan --resolution 32 --channels 1 --batch-size 64
"""
from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

RESOLUTIONS = (16, 32, 64, 128)  # 4 * 2**n, n >= 2
DATASET_BATCHES = 16             # the random "data set" holds this many batches


def _doublings(resolution: int) -> int:
    n = int(round(math.log2(resolution / 4))) if resolution >= 4 else 0
    if resolution not in RESOLUTIONS or 4 * 2 ** n != resolution:
        raise ValueError(f"reference DCGAN supports resolutions {RESOLUTIONS}, got {resolution}")
    return n


# custom weights initialization called on netG and netD (as in the tutorial)
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3, resolution=64):
        super().__init__()
        n = _doublings(resolution)
        # input is Z, going into a convolution; state size. (ngf * 2**(n-1)) x 4 x 4
        layers = [nn.ConvTranspose2d(nz, ngf * 2 ** (n - 1), 4, 1, 0, bias=False),
                  nn.BatchNorm2d(ngf * 2 ** (n - 1)),
                  nn.ReLU(True)]
        for k in range(n - 1, 0, -1):
            # state size doubles, channels halve
            layers += [nn.ConvTranspose2d(ngf * 2 ** k, ngf * 2 ** (k - 1), 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ngf * 2 ** (k - 1)),
                       nn.ReLU(True)]
        # state size. (ngf) x resolution/2 x resolution/2 -> (nc) x resolution x resolution
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
                   nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, nc=3, ndf=64, resolution=64):
        super().__init__()
        n = _doublings(resolution)
        # input is (nc) x resolution x resolution
        layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
                  nn.LeakyReLU(0.2, inplace=True)]
        for k in range(1, n):
            layers += [nn.Conv2d(ndf * 2 ** (k - 1), ndf * 2 ** k, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ndf * 2 ** k),
                       nn.LeakyReLU(0.2, inplace=True)]
        # state size. (ndf * 2**(n-1)) x 4 x 4
        layers += [nn.Conv2d(ndf * 2 ** (n - 1), 1, 4, 1, 0, bias=False),
                   nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input)


def build_models(resolution=64, channels=3, ngf=64, ndf=64, nz=100):
    """The tutorial's netG and netD for `resolution` x `resolution` x `channels` images."""
    netG = Generator(nz, ngf, channels, resolution)
    netG.apply(weights_init)
    netD = Discriminator(channels, ndf, resolution)
    netD.apply(weights_init)
    return netG, netD


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class ReferenceDCGAN:
    """The tutorial's set-up; `run_steps(n)` runs n iterations of its training loop body."""

    def __init__(self, resolution=64, channels=3, batch_size=128, device="cpu",
                 ngf=64, ndf=64, nz=100, seed=999):
        self.device = device = torch.device(device)
        torch.manual_seed(seed)
        self.nz = nz
        self.netG, self.netD = build_models(resolution, channels, ngf, ndf, nz)
        self.netG.to(device)
        self.netD.to(device)
        # The "data set": a CPU tensor of images in [-1, 1], shuffled each epoch.
        images = torch.rand(batch_size * DATASET_BATCHES, channels, resolution, resolution) * 2 - 1
        dataset = TensorDataset(images)
        self.dataloader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
        self.criterion = nn.BCELoss()
        self.fixed_noise = torch.randn(64, nz, 1, 1, device=device)
        self.real_label = 1.
        self.fake_label = 0.
        self.optimizerD = optim.Adam(self.netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.optimizerG = optim.Adam(self.netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.G_losses = []
        self.D_losses = []
        self.iters = 0
        self._batches = iter(self.dataloader)

    def _next_batch(self):
        try:
            return next(self._batches)
        except StopIteration:  # a new epoch
            self._batches = iter(self.dataloader)
            return next(self._batches)

    def run_steps(self, steps):
        """Run `steps` training iterations; returns [(seconds, images)] per iteration."""
        netG, netD, criterion, device, nz = self.netG, self.netD, self.criterion, self.device, self.nz
        timings = []
        for _ in range(steps):
            _sync(device)
            start = time.perf_counter()
            data = self._next_batch()

            ############################
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            ###########################
            ## Train with all-real batch
            netD.zero_grad()
            # Format batch
            real_cpu = data[0].to(device)
            b_size = real_cpu.size(0)
            label = torch.full((b_size,), self.real_label, dtype=torch.float, device=device)
            # Forward pass real batch through D
            output = netD(real_cpu).view(-1)
            # Calculate loss on all-real batch
            errD_real = criterion(output, label)
            # Calculate gradients for D in backward pass
            errD_real.backward()
            D_x = output.mean().item()

            ## Train with all-fake batch
            # Generate batch of latent vectors
            noise = torch.randn(b_size, nz, 1, 1, device=device)
            # Generate fake image batch with G
            fake = netG(noise)
            label.fill_(self.fake_label)
            # Classify all fake batch with D
            output = netD(fake.detach()).view(-1)
            # Calculate D's loss on the all-fake batch
            errD_fake = criterion(output, label)
            # Calculate the gradients for this batch, accumulated (summed) with previous gradients
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            # Compute error of D as sum over the fake and the real batches
            errD = errD_real + errD_fake
            # Update D
            self.optimizerD.step()

            ############################
            # (2) Update G network: maximize log(D(G(z)))
            ###########################
            netG.zero_grad()
            label.fill_(self.real_label)  # fake labels are real for generator cost
            # Since we just updated D, perform another forward pass of all-fake batch through D
            output = netD(fake).view(-1)
            # Calculate G's loss based on this output
            errG = criterion(output, label)
            # Calculate gradients for G
            errG.backward()
            D_G_z2 = output.mean().item()
            # Update G
            self.optimizerG.step()

            # Output training stats (the tutorial prints every 50 iterations)
            if self.iters % 50 == 0:
                self.last_stats = (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)
            # Save Losses for plotting later
            self.G_losses.append(errG.item())
            self.D_losses.append(errD.item())
            self.iters += 1

            _sync(device)
            timings.append((time.perf_counter() - start, b_size))
        return timings


def run_reference(resolution=64, channels=3, batch_size=128, steps=20, device="cpu", warmup=5,
                  ngf=64, ndf=64, nz=100) -> dict:
    """Time `steps` iterations of the textbook loop after `warmup` untimed ones.

    Returns {"images_per_s": images / seconds over the timed steps, "step_times": [s, ...]}.
    """
    loop = ReferenceDCGAN(resolution, channels, batch_size, device, ngf, ndf, nz)
    loop.run_steps(warmup)
    timings = loop.run_steps(steps)
    seconds = sum(t for t, _ in timings)
    images = sum(n for _, n in timings)
    return {"images_per_s": images / seconds if seconds > 0 else float("nan"),
            "step_times": [t for t, _ in timings]}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time the fixed textbook DCGAN training loop.")
    parser.add_argument("--resolution", type=int, default=32, choices=RESOLUTIONS)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    result = run_reference(args.resolution, args.channels, args.batch_size, args.steps,
                           args.device, args.warmup, args.ngf, args.ndf)
    times = sorted(result["step_times"])
    print(f"reference DCGAN {args.resolution}x{args.resolution}x{args.channels}, batch "
          f"{args.batch_size}, {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"  {result['images_per_s']:.1f} images/s over {args.steps} steps "
          f"(median step {times[len(times) // 2] * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
