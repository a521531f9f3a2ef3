//! The demo applications in headless Chromium, driven over the DevTools protocol: a chat
//! message typed in one tab appears in another, the live chart receives points, and two
//! players see each other move. Screenshots go to `target/demo-screenshots/`.

use std::{path::PathBuf, time::Duration};

use sockjet_interop::{
    cdp::{Browser, Page},
    deps,
};

const WAIT: Duration = Duration::from_secs(20);

fn screenshot_path(name: &str) -> PathBuf {
    deps::repo_root()
        .join("target")
        .join("demo-screenshots")
        .join(format!("{name}.png"))
}

async fn start_demo() -> String {
    let server = sockjet_demo::Demo::start()
        .bind("127.0.0.1:0")
        .await
        .expect("bind the demo server");
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.serve());
    base
}

async fn shot(browser: &mut Browser, page: &Page, name: &str) {
    let path = screenshot_path(name);
    browser
        .screenshot(page, &path)
        .await
        .unwrap_or_else(|error| panic!("screenshot {name}: {error}"));
    println!("screenshot: {}", path.display());
}

/// Fills an input and submits its form, as a user would.
fn type_and_submit(input: &str, form: &str, text: &str) -> String {
    format!(
        "(() => {{ const i = document.getElementById({input:?}); i.value = {text:?}; \
         document.getElementById({form:?}).requestSubmit(); return true; }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_message_typed_in_one_tab_appears_in_another() {
    let base = start_demo().await;
    let mut browser = Browser::launch().await;
    let room = format!("{base}/chat/interop");
    let ada = browser.open("tab ada", &room).await.unwrap();
    let bob = browser.open("tab bob", &room).await.unwrap();
    for (page, nick) in [(&ada, "ada"), (&bob, "bob")] {
        browser
            .wait_for(
                page,
                "document.getElementById('state').textContent === 'connected'",
                "document.getElementById('state').textContent",
                WAIT,
            )
            .await
            .unwrap();
        browser
            .eval(page, &type_and_submit("nick", "join", nick))
            .await
            .unwrap();
        browser
            .wait_for(
                page,
                "!document.getElementById('say').hidden",
                "document.body.innerText",
                WAIT,
            )
            .await
            .unwrap();
    }
    // Both are in the member list of ada's tab.
    browser
        .wait_for(
            &ada,
            "document.getElementById('members').innerText.includes('bob')",
            "document.getElementById('members').innerText",
            WAIT,
        )
        .await
        .unwrap();

    browser
        .eval(&ada, &type_and_submit("text", "say", "hello from ada"))
        .await
        .unwrap();
    let log = browser
        .wait_for(
            &bob,
            "document.getElementById('log').innerText.includes('hello from ada') && document.getElementById('log').innerText",
            "document.getElementById('log').innerText",
            WAIT,
        )
        .await
        .unwrap();
    assert!(log.as_str().unwrap().contains("ada"), "{log}");

    // A bad message gets an error line, not a disconnect.
    browser
        .eval(&bob, "ws.send('{\"type\":\"shout\"}'), true")
        .await
        .unwrap();
    browser
        .wait_for(
            &bob,
            "document.querySelector('#log .error') !== null",
            "document.getElementById('log').innerText",
            WAIT,
        )
        .await
        .unwrap();
    let state = browser
        .eval(&bob, "document.getElementById('state').textContent")
        .await
        .unwrap();
    assert_eq!(state, "connected");
    shot(&mut browser, &ada, "chat-ada").await;
    shot(&mut browser, &bob, "chat-bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_chart_receives_points_and_shows_latency() {
    let base = start_demo().await;
    let mut browser = Browser::launch().await;
    let page = browser.open("live", &format!("{base}/live")).await.unwrap();
    browser
        .wait_for(
            &page,
            "window.demo.samples >= 50 && window.demo.rtt !== null",
            "JSON.stringify(window.demo)",
            WAIT,
        )
        .await
        .unwrap();
    // Four series, each with a canvas that has been drawn on.
    let drawn = browser
        .eval(
            &page,
            "[...document.querySelectorAll('canvas')].filter(c => { \
               const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
               for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; }).length",
        )
        .await
        .unwrap();
    assert_eq!(drawn, 4, "every series' chart is drawn");
    let seq = browser.eval(&page, "window.demo.lastSeq").await.unwrap();
    assert!(seq.as_u64().unwrap() >= 49);
    shot(&mut browser, &page, "live").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_see_each_other_move() {
    let base = start_demo().await;
    let mut browser = Browser::launch().await;
    let url = format!("{base}/game");
    let one = browser.open("player one", &url).await.unwrap();
    let two = browser.open("player two", &url).await.unwrap();
    for (page, name) in [(&one, "one"), (&two, "two")] {
        browser
            .wait_for(
                page,
                "window.demo.state === 'connected'",
                "window.demo.state",
                WAIT,
            )
            .await
            .unwrap();
        browser
            .eval(page, &type_and_submit("name", "join", name))
            .await
            .unwrap();
        browser
            .wait_for(page, "window.demo.you !== null", "window.demo.state", WAIT)
            .await
            .unwrap();
    }
    // Each sees both players.
    for page in [&one, &two] {
        browser
            .wait_for(
                page,
                "window.demo.players.size === 2",
                "window.demo.players.size",
                WAIT,
            )
            .await
            .unwrap();
    }
    let position =
        "(() => { const me = window.demo.players.get(window.demo.you); return [me.x, me.y]; })()";
    let start = browser.eval(&one, position).await.unwrap();
    let (x, y) = (start[0].as_i64().unwrap(), start[1].as_i64().unwrap());
    // Move toward the side with more room, with real key presses.
    let (key, dx) = if x < 12 {
        ("ArrowRight", 1)
    } else {
        ("ArrowLeft", -1)
    };
    for _ in 0..3 {
        browser
            .eval(
                &one,
                &format!(
                    "document.dispatchEvent(new KeyboardEvent('keydown', {{ key: {key:?} }})), true"
                ),
            )
            .await
            .unwrap();
        // One move per tick is applied; let each land.
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    // Player two's page sees player one at the new place.
    let expected_x = x + 3 * dx;
    let seen = browser
        .wait_for(
            &two,
            &format!(
                "(() => {{ const p = [...window.demo.players.values()].find(p => p.name === 'one'); \
                 return p && p.x === {expected_x} && p.y === {y}; }})()"
            ),
            "JSON.stringify([...window.demo.players.values()])",
            WAIT,
        )
        .await;
    seen.unwrap();
    shot(&mut browser, &one, "game-one").await;
    shot(&mut browser, &two, "game-two").await;
}
