//! `ddpm info`, `ddpm import` and `ddpm export`: checkpoints and weight files.

use std::path::PathBuf;

use anyhow::bail;
use burn_store::ModuleSnapshot;
use clap::{Args, ValueEnum};
use ddpm_trainer::{Preset, TrainConfig, load_model, save_model_checkpoint};
use ddpm_unet::{Denoiser, DenoiserConfig, SimpleUnetConfig, trainable_params};

use crate::backend::Ndarray;

/// Arguments of `ddpm info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A checkpoint folder, or a run folder (its latest checkpoint).
    checkpoint: PathBuf,
}

/// Prints what a checkpoint holds.
pub fn info(args: &InfoArgs) -> anyhow::Result<()> {
    let loaded = load_model::<Ndarray>(&args.checkpoint, false, &Default::default())?;
    let state = &loaded.state;
    let config = &state.config;
    let architecture = match &config.model {
        DenoiserConfig::SimpleUnet(c) => format!(
            "SimpleUnet, channels {:?}, time embedding {}",
            c.channels, c.time_embedding_dim
        ),
        DenoiserConfig::DdpmUnet(c) => format!(
            "DdpmUnet, base {} x {:?}, {} res blocks, attention at {:?}",
            c.base_channels, c.channel_multipliers, c.num_res_blocks, c.attention_resolutions
        ),
    };
    println!("checkpoint   {}", loaded.checkpoint.display());
    println!("step         {} (epoch {})", state.step, state.epoch);
    println!(
        "loss         {}",
        state
            .loss
            .map_or("- (imported weights)".into(), |l| format!(
                "{l:.5} (smoothed)"
            ))
    );
    println!("model        {architecture}");
    println!("parameters   {}", trainable_params(&loaded.model));
    println!(
        "images       {0}x{0}, {1} channel(s)",
        config.image_size,
        config.model.image_channels()
    );
    println!(
        "schedule     {} betas, T = {}, predicting {:?}, {:?} loss",
        config.schedule.beta_schedule,
        config.schedule.num_timesteps,
        config.prediction,
        config.loss
    );
    match config.ema {
        Some(ema) => println!(
            "EMA          yes (decay {}){}",
            ema.decay,
            if loaded.checkpoint.join("ema.mpk").is_file() {
                ""
            } else {
                ", weights missing"
            }
        ),
        None => println!("EMA          no"),
    }
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
    if args.out.join("run.json").exists() {
        bail!(
            "{} already holds a run; choose another --out",
            args.out.display()
        );
    }
    let model_config = SimpleUnetConfig::from_seed_checkpoint(&args.pth)?;
    let model = model_config
        .init::<Ndarray>(&Default::default())?
        .load_seed_checkpoint(&args.pth)?;
    let config = TrainConfig {
        model: DenoiserConfig::SimpleUnet(model_config.clone()),
        image_size: args.image_size,
        ..TrainConfig::preset(Preset::Seed)
    };
    config.validate()?;
    let params = trainable_params(&model);
    let checkpoint = save_model_checkpoint(&args.out, config, &Denoiser::SimpleUnet(model))?;
    println!(
        "imported {} (SimpleUnet, channels {:?}, {params} parameters) into {}",
        args.pth.display(),
        model_config.channels,
        checkpoint.display()
    );
    Ok(())
}

/// Weight file formats `ddpm export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// safetensors, in the reference PyTorch module's key layout.
    Safetensors,
}

/// Arguments of `ddpm export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A checkpoint folder, or a run folder (its latest checkpoint).
    checkpoint: PathBuf,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Safetensors)]
    format: ExportFormat,
    /// Export the raw weights even when EMA weights exist.
    #[arg(long)]
    no_ema: bool,
}

/// Writes a checkpoint's weights for the Python ecosystem.
pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let loaded = load_model::<Ndarray>(&args.checkpoint, !args.no_ema, &Default::default())?;
    match args.format {
        ExportFormat::Safetensors => match &loaded.model {
            Denoiser::SimpleUnet(model) => model.save_safetensors(&args.out)?,
            Denoiser::DdpmUnet(model) => model.save_safetensors(&args.out)?,
        },
    }
    let tensors = loaded.model.collect(None, None, false).len();
    println!(
        "wrote {} ({tensors} tensors, {} weights)",
        args.out.display(),
        if loaded.ema { "EMA" } else { "raw" }
    );
    Ok(())
}
