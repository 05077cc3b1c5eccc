"""The built-in presets: every GAN of the classic material as a named spec.

Each is a spec mapping (``gan_models.variants.spec``) validated at registration; params.yaml
names one as a key of ``train.variants`` (or with ``preset:``) and overrides any part of it.
"""

from __future__ import annotations

from .spec import register_variant

_ADAM = {"optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}

register_variant("mlp", "vanilla GAN: MLP G (100 -> 256 -> out, Tanh) and D (-> 256 -> logit), BCE "
                 "(Goodfellow et al. 2014)", {
                     "generator": {"arch": "mlp", "hidden": [256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("mlp_deep", "deeper MLP GAN: G 100 -> 256 -> 512 -> 1024 -> out, D out -> 512 -> 256, BCE", {
    "generator": {"arch": "mlp", "hidden": [256, 512, 1024]},
    "discriminator": {"arch": "mlp", "hidden": [512, 256]},
    "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("dcgan", "DCGAN: transposed-conv G with BatchNorm, strided-conv D (Radford et al. 2016)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64},
    "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("lsgan", "least-squares GAN on the DCGAN networks (Mao et al. 2017)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64},
    "loss": {"name": "lsgan"}, "z_dim": 100, **_ADAM})
register_variant("sngan", "spectral-norm (BigGAN-style) D without BatchNorm, hinge loss (Miyato et al. 2018)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64, "batchnorm": False, "spectral_norm": True},
    "loss": {"name": "hinge"}, "z_dim": 100, "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4,
    "betas": [0.0, 0.9]})
register_variant("wgan", "Wasserstein GAN, weight clipping 0.01, n_critic 5, RMSprop 5e-5 (Arjovsky et al. 2017)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64},
    "loss": {"name": "wgan", "n_critic": 5, "clip": 0.01}, "z_dim": 100,
    "optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5, "betas": [0.5, 0.999]})
register_variant("wgan_gp", "Wasserstein GAN with gradient penalty 10, n_critic 5, no BatchNorm in D "
                 "(Gulrajani et al. 2017)", {
                     "generator": {"arch": "dcgan", "width": 64},
                     "discriminator": {"arch": "dcgan", "width": 64, "batchnorm": False},
                     "loss": {"name": "wgan_gp", "n_critic": 5, "gp_weight": 10.0}, "z_dim": 100,
                     "optimizer": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]})


register_variant("resnet", "residual-block G with dropout, residual D, BCE", {
    "generator": {"arch": "resnet", "width": 64, "dropout": 0.3},
    "discriminator": {"arch": "resnet", "width": 64},
    "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("sagan", "self-attention in G and D, spectral norm in both, hinge loss, TTUR 1e-4/4e-4 "
                 "(Zhang et al. 2019)", {
                     "generator": {"arch": "dcgan", "width": 64, "self_attention": True, "spectral_norm": True},
                     "discriminator": {"arch": "dcgan", "width": 64, "batchnorm": False, "spectral_norm": True,
                                       "self_attention": True},
                     "loss": {"name": "hinge"}, "z_dim": 100, "optimizer": "adam", "lr_g": 1e-4, "lr_d": 4e-4,
                     "betas": [0.0, 0.9]})
register_variant("cgan", "conditional GAN: G gets noise + one-hot label, D gets image + label planes "
                 "(Mirza & Osindero 2014), DCGAN networks", {
                     "generator": {"arch": "dcgan", "width": 64},
                     "discriminator": {"arch": "dcgan", "width": 64},
                     "loss": {"name": "bce"}, "conditioning": "input", "z_dim": 100, **_ADAM})
register_variant("acgan", "auxiliary-classifier GAN: conditional G, D with a class head (Odena et al. 2017)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64},
    "loss": {"name": "bce"}, "conditioning": "auxiliary", "tricks": {"aux_weight": 1.0}, "z_dim": 100, **_ADAM})
register_variant("multimodal", "several conditioning inputs at once: class label, stroke thickness and slant, "
                 "each through its own branch in G fused with the noise, projection D (Miyato & Koyama 2018), "
                 "DCGAN networks at width 32", {
                     "generator": {"arch": "dcgan", "width": 32},
                     "discriminator": {"arch": "dcgan", "width": 32},
                     "loss": {"name": "bce"}, "conditioning": {"inputs": ["label", "thickness", "slant"], "embed": 16},
                     "z_dim": 100, **_ADAM})
register_variant("progan", "progressive growing: resolution doubles in phases with fade-in, WGAN-GP with drift, "
                 "minibatch stddev (Karras et al. 2018)", {
                     "generator": {"arch": "progan", "width": 32},
                     "discriminator": {"arch": "progan", "width": 32},
                     "loss": {"name": "wgan_gp", "n_critic": 1, "gp_weight": 10.0, "drift": 0.001},
                     "z_dim": 100, "optimizer": "adam", "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.0, 0.99]})
register_variant("stylegan", "compact StyleGAN2 (Karras et al. 2020): style-based G with style mixing 0.9, "
                 "residual D with minibatch stddev, non-saturating loss, lazy R1 every 16 D steps, G EMA with "
                 "ramp-up, Adam 0.0025 betas (0, 0.99)", {
                     "generator": {"arch": "stylegan", "width": 16, "max_width": 64, "w_dim": 128,
                                   "mapping_depth": 2, "mixing_prob": 0.9, "truncation_psi": 1.0},
                     "discriminator": {"arch": "stylegan", "width": 16, "max_width": 64},
                     "loss": {"name": "bce"}, "tricks": {"r1": 0.1, "r1_every": 16},
                     "ema": 0.998, "ema_rampup": 0.05, "z_dim": 128,
                     "optimizer": "adam", "lr_g": 0.0025, "lr_d": 0.0025, "betas": [0.0, 0.99]})
register_variant("unrolled", "unrolled GAN: G's loss against D unrolled 5 differentiable steps ahead "
                 "(Metz et al. 2017), MLP networks", {
                     "generator": {"arch": "mlp", "hidden": [256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "bce"}, "tricks": {"unrolled_steps": 5, "unrolled_lr": 0.01},
                     "z_dim": 100, **_ADAM})
register_variant("minibatch_disc", "minibatch discrimination layer in D (Salimans et al. 2016), MLP networks", {
    "generator": {"arch": "mlp", "hidden": [256]},
    "discriminator": {"arch": "mlp", "hidden": [256], "minibatch_features": 16},
    "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("feature_matching", "feature-matching G loss on D's last hidden layer (Salimans et al. 2016), "
                 "MLP networks", {
                     "generator": {"arch": "mlp", "hidden": [256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "bce"}, "tricks": {"feature_matching": True}, "z_dim": 100, **_ADAM})
register_variant("pacgan", "packed discriminator judging m=2 samples at once (PacGAN2, Lin et al. 2018), "
                 "MLP networks", {
                     "generator": {"arch": "mlp", "hidden": [256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "bce"}, "tricks": {"pack": 2}, "z_dim": 100, **_ADAM})
register_variant("pix2pix", "paired image-to-image translation: U-Net G, PatchGAN D on (input, output), "
                 "BCE + 100 * L1, Adam 2e-4 beta1 0.5 (Isola et al. 2017)", {
                     "generator": {"arch": "unet", "width": 32, "dropout": 0.5},
                     "discriminator": {"arch": "patchgan", "width": 32, "norm": "batch"},
                     "loss": {"name": "pix2pix", "l1_weight": 100.0, "gan": "bce"}, "z_dim": 0, **_ADAM})
register_variant("cyclegan", "unpaired translation: two ResNet-block Gs, two PatchGAN Ds (InstanceNorm), least "
                 "squares, cycle 10, identity 5, pools of 50 fakes, learning rate constant then linear to 0 over "
                 "the last half (Zhu et al. 2017)", {
                     "generator": {"arch": "resnet_blocks", "width": 32, "n_blocks": 6},
                     "discriminator": {"arch": "patchgan", "width": 32, "norm": "instance"},
                     "loss": {"name": "cyclegan", "cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 50},
                     "lr_decay": 0.5, "z_dim": 0, **_ADAM})
