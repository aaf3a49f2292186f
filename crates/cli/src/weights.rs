//! `ddpm info`, `ddpm import` and `ddpm export`: checkpoints and weight files.

use std::path::PathBuf;

use burn_store::ModuleSnapshot;
use clap::Args;
use ddpm_trainer::{import_seed_checkpoint, load_model};

use crate::backend::Ndarray;

/// Arguments of `ddpm info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A checkpoint folder, or a run folder (its latest checkpoint).
    checkpoint: PathBuf,
}

/// Prints what a checkpoint holds.
pub fn info(args: &InfoArgs) -> anyhow::Result<()> {
    print!(
        "{}",
        load_model::<Ndarray>(&args.checkpoint, false, &Default::default())?
    );
    Ok(())
}

/// Arguments of `ddpm import`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ddpm import checkpoint/42unet-best.pth --out checkpoint/seed-import\n  \
ddpm sample --checkpoint checkpoint/seed-import"
)]
pub struct ImportArgs {
    /// The seed's PyTorch checkpoint (a SimpleUnet state_dict, e.g. `<epoch>unet-best.pth`).
    pth: PathBuf,
    /// The run folder to create (its checkpoint is `step-000000`).
    #[arg(long)]
    out: PathBuf,
    /// Side of the images the model was trained on (the seed used 32).
    #[arg(long, default_value_t = 32)]
    image_size: usize,
}

/// Imports the seed's weights as a checkpoint with the seed's recipe.
pub fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let device = Default::default();
    let imported =
        import_seed_checkpoint::<Ndarray>(&args.pth, &args.out, args.image_size, &device)?;
    println!(
        "imported {} ({imported}) into {}",
        args.pth.display(),
        imported.checkpoint.display()
    );
    Ok(())
}

/// Arguments of `ddpm export` (safetensors, in the reference PyTorch module's key layout).
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A checkpoint folder, or a run folder (its latest checkpoint).
    checkpoint: PathBuf,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Export the raw weights even when EMA weights exist.
    #[arg(long)]
    no_ema: bool,
}

/// Writes a checkpoint's weights for the Python ecosystem.
pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let loaded = load_model::<Ndarray>(&args.checkpoint, !args.no_ema, &Default::default())?;
    loaded.model.save_safetensors(&args.out)?;
    let tensors = loaded.model.collect(None, None, false).len();
    println!(
        "wrote {} ({tensors} tensors, {} weights)",
        args.out.display(),
        if loaded.ema { "EMA" } else { "raw" }
    );
    Ok(())
}
