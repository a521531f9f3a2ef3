//! An echo server on the io_uring engine: `cargo run --release -p sockjet-uring --example
//! uring_echo -- 127.0.0.1:8765 [THREADS]`.

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    use sockjet_uring::{Handler, Message, Options, Server, Socket};

    struct Echo;

    impl Handler for Echo {
        fn message(&mut self, socket: &mut Socket<'_>, message: Message) {
            let _ = socket.send(message);
        }
    }

    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8765".into());
    let threads = args
        .next()
        .map_or(1, |n| n.parse().expect("THREADS is a number"));
    let mut options = Options {
        threads,
        ..Default::default()
    };
    if std::env::var_os("SOCKJET_NO_KEEPALIVE").is_some() {
        options.ping_interval = None;
    }
    options.config = options.config.protocol(
        sockjet_uring::Config::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20)),
    );
    let server = Server::bind(addr, options)?;
    println!("listening on ws://{}", server.local_addr()?);
    server.run(|| Echo)
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("io_uring is Linux only");
}
