//! The dashboard in a real headless Chromium: the page loads, asks for the token, accepts it,
//! and draws its charts with live data. A screenshot is saved under target/ for people to look
//! at.

// Tests stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::{path::PathBuf, time::Duration};

use chromiumoxide::{Browser, BrowserConfig, page::ScreenshotParams};
use db_connect::testing::{TestDatabase, service_unavailable};
use futures::StreamExt;
use server::{app::HttpLimits, startup, tokens};

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".to_owned()),
        Some("/usr/bin/chromium-browser".to_owned()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

async fn eval_string(page: &chromiumoxide::Page, script: &str) -> String {
    page.evaluate(script)
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap()
}

/// Polls `script` until it returns "true" or the deadline passes.
async fn wait_for(page: &chromiumoxide::Page, script: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if eval_string(page, &format!("String({script})")).await == "true" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_draws_live_data_in_chromium() {
    let Some(executable) = chromium() else {
        service_unavailable(
            "Chromium",
            "no chromium at /usr/bin/chromium (apt-get install chromium) and CHROMIUM unset",
        );
        return;
    };
    let test_db = TestDatabase::sqlite()
        .await
        .migrated::<migration::Migrator>()
        .await;
    dataset::generate(
        test_db.connection(),
        &dataset::DatasetOptions::new(dataset::Scale::Tiny),
        &|_| {},
    )
    .await
    .unwrap();
    let admin = tokens::issue(
        test_db.connection(),
        "admin@hotel.example",
        Some(entity::UserRole::Admin),
        None,
    )
    .await
    .unwrap()
    .token;
    let settings = startup::Settings {
        cache_max_entries: 1_000,
        ..startup::Settings::new(test_db.url())
    };
    let state = startup::build_state(&settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(startup::serve(
        listener,
        state,
        HttpLimits::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    // Traffic for the charts: cached and uncached reads.
    let client = reqwest::Client::new();
    let traffic = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            for i in 0..400 {
                let _ = client
                    .get(format!("{base}/api/availability?roomTypeId={}", 1 + i % 3))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .no_sandbox()
        .new_headless_mode()
        .user_data_dir(profile.path())
        .window_size(1280, 1400)
        .viewport(chromiumoxide::handler::viewport::Viewport {
            width: 1280,
            height: 1400,
            ..Default::default()
        })
        .args([
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .build()
        .unwrap();
    let (mut browser, mut handler) = Browser::launch(config).await.unwrap();
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });

    let page = browser
        .new_page(format!("{base}/admin/dashboard"))
        .await
        .unwrap();
    wait_for(
        &page,
        "!document.getElementById('login').hidden",
        "the token prompt",
    )
    .await;
    assert_eq!(
        eval_string(&page, "String(document.getElementById('panels').hidden)").await,
        "true",
        "no data before a token"
    );

    // A wrong token is refused with a message, and the prompt stays.
    page.find_element("#token")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str("htk_wrong")
        .await
        .unwrap();
    page.find_element("#connect")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &page,
        "document.getElementById('login-error').textContent.length > 0",
        "the refusal",
    )
    .await;

    page.find_element("#token")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(&admin)
        .await
        .unwrap();
    page.find_element("#connect")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &page,
        "!document.getElementById('panels').hidden",
        "the panels",
    )
    .await;
    // Several refreshes: every line chart drew, with more than one point of history.
    wait_for(
        &page,
        "Number(document.getElementById('chart-rate').dataset.points) >= 3",
        "three samples",
    )
    .await;
    for chart in [
        "chart-hit-ratio",
        "chart-entries",
        "chart-rate",
        "chart-latency",
        "chart-queries",
    ] {
        let drawn = eval_string(
            &page,
            &format!("document.getElementById('{chart}').dataset.drawn"),
        )
        .await;
        assert!(
            drawn.parse::<u32>().unwrap() >= 1,
            "{chart} was never drawn"
        );
    }
    wait_for(
        &page,
        "Number(document.getElementById('chart-queries').dataset.bars) > 0",
        "query bars",
    )
    .await;
    // The charts hold their data line in its colour, not just the grid.
    for (chart, rgb) in [
        ("chart-hit-ratio", (0x12, 0xb7, 0x6a)),
        ("chart-rate", (0x7a, 0x5a, 0xf8)),
        ("chart-queries", (0x3e, 0x63, 0xdd)),
    ] {
        let inked = eval_string(
            &page,
            &format!(
                "String((() => {{ const c = document.getElementById('{chart}'); \
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
                 let n = 0; for (let i = 0; i < d.length; i += 4) \
                 if (Math.abs(d[i] - {}) < 40 && Math.abs(d[i + 1] - {}) < 40 && Math.abs(d[i + 2] - {}) < 40 && d[i + 3] > 128) n++; \
                 return n; }})())",
                rgb.0, rgb.1, rgb.2
            ),
        )
        .await;
        assert!(
            inked.parse::<u32>().unwrap() > 100,
            "{chart} has {inked} pixels of its series colour"
        );
    }
    let rate = eval_string(&page, "document.getElementById('rate').textContent").await;
    assert!(!rate.starts_with("0.0 "), "traffic shows as a rate: {rate}");
    let hit_ratio = eval_string(&page, "document.getElementById('hit-ratio').textContent").await;
    assert!(
        hit_ratio.contains('%') && hit_ratio.contains("hits"),
        "{hit_ratio}"
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
        .await
        .unwrap();
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    eprintln!("dashboard screenshot: {}", shot.display());

    // The token survives a reload within the tab's session.
    page.reload().await.unwrap();
    wait_for(
        &page,
        "!document.getElementById('panels').hidden",
        "the panels after a reload",
    )
    .await;

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    events.abort();
    traffic.abort();
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
