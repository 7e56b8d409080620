//! The demo account's settings (with the embedding configuration and a legacy API-key
//! setting that must never travel), its preset and its connections. Setting values and
//! preset fields are JSON text; their types serialize the keys in the order Lumiverse's
//! rows have them.

use serde::Serialize;

use super::row::{json_text, SeedRow};
use super::{Demo, SeedOptions};
use crate::util::new_id;

#[derive(Serialize)]
struct Theme {
    mode: &'static str,
    accent: &'static str,
    #[serde(rename = "fontScale")]
    font_scale: f64,
}

#[derive(Serialize)]
struct EmbeddingConfig {
    enabled: bool,
    provider: &'static str,
    model: &'static str,
    dimensions: u32,
    vectorize_world_books: bool,
    retrieval_top_k: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatBehavior {
    streaming: bool,
    auto_scroll: bool,
    swipe_animations: bool,
}

#[derive(Serialize)]
struct ImageGeneration {
    presets: [ImagePreset; 1],
}

#[derive(Serialize)]
struct ImagePreset {
    id: &'static str,
    name: &'static str,
    steps: u32,
}

#[derive(Serialize)]
struct NotificationSound {
    enabled: bool,
    custom: bool,
    file: &'static str,
}

/// A preset's `parameters`.
#[derive(Serialize)]
struct Sampling {
    temperature: f64,
    top_p: f64,
    max_tokens: u32,
}

/// A preset's `prompts`.
#[derive(Serialize)]
struct Prompts {
    main: Prompt,
}

#[derive(Serialize)]
struct Prompt {
    content: &'static str,
    role: &'static str,
}

/// Adds the settings, the preset, the connection profiles (as many as there are secrets,
/// at least two) and an image-generation connection; the connection profiles' ids.
pub(super) fn add(demo: &mut Demo<'_>, options: &SeedOptions) -> Vec<String> {
    let (uid, now) = (demo.uid, demo.now);
    let preset_id = new_id();
    let connection_ids: Vec<String> = (0..options.secrets.max(2)).map(|_| new_id()).collect();
    let embedding = EmbeddingConfig {
        enabled: true,
        provider: "openai",
        model: "text-embedding-3-small",
        dimensions: options.dimension,
        vectorize_world_books: true,
        retrieval_top_k: 4,
    };
    let legacy_key_setting = format!("connection_{}_api_key", connection_ids[0]);
    for (key, value) in [
        ("theme", json_text(&Theme { mode: "dark", accent: "#7c5cff", font_scale: 1.05 })),
        ("language", json_text("en")),
        ("embeddingConfig", json_text(&embedding)),
        ("chatBehavior", json_text(&ChatBehavior { streaming: true, auto_scroll: true, swipe_animations: false })),
        (
            "imageGeneration",
            json_text(&ImageGeneration { presets: [ImagePreset { id: "p-portrait", name: "Portrait", steps: 28 }] }),
        ),
        ("notificationSound", json_text(&NotificationSound { enabled: true, custom: true, file: "completion.wav" })),
        (legacy_key_setting.as_str(), json_text("sk-legacy-plaintext-must-not-travel")),
    ] {
        let row = SeedRow::new().text("key", key).text("value", value).int("updated_at", now).text("user_id", uid);
        demo.add("settings", row);
    }

    let preset = SeedRow::new()
        .text("id", &preset_id)
        .text("name", "Balanced Storyteller")
        .text("provider", "openai")
        .json_text("parameters", &Sampling { temperature: 0.85, top_p: 0.95, max_tokens: 800 })
        .text("prompt_order", "[]")
        .text("metadata", "{}")
        .json_text("prompts", &Prompts { main: Prompt { content: "You are a vivid narrator.", role: "system" } })
        .int("created_at", now)
        .int("updated_at", now)
        .text("user_id", uid)
        .text("engine", "classic")
        .int("cache_revision", 0);
    demo.add("presets", preset);
    for (index, id) in connection_ids.iter().enumerate() {
        let connection = SeedRow::new()
            .text("id", id)
            .text("name", format!("Connection {}", index + 1))
            .text("provider", "openai")
            .text("api_url", "https://api.openai.example/v1")
            .text("model", "gpt-4o-mini")
            .text("preset_id", &preset_id)
            .int("is_default", i64::from(index == 0))
            .text("metadata", "{}")
            .int("created_at", now)
            .int("updated_at", now)
            .int("has_api_key", 1)
            .text("user_id", uid);
        demo.add("connection_profiles", connection);
    }
    let image_generation = SeedRow::new()
        .text("id", new_id())
        .text("user_id", uid)
        .text("name", "Diffusion")
        .text("provider", "comfyui")
        .text("api_url", "http://127.0.0.1:8188")
        .text("model", "sdxl")
        .int("is_default", 1)
        .int("has_api_key", 0)
        .text("default_parameters", "{}")
        .text("metadata", "{}")
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("image_gen_connections", image_generation);
    connection_ids
}
