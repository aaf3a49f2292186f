//! The DDPM paper's U-Net (Ho et al. 2020). Written in the next step.
