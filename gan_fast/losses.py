"""GAN losses (filled by the losses issue)."""
