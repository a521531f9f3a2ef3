//! The multiplayer game: players move on a board and collect coins. The server is
//! authoritative: clients send moves, a 20 Hz tick applies them, and each tick's changes
//! go to every player as one diff (a full snapshot only when a player joins).
//!
//! Client to server (JSON): `{"type":"join","name":"ada"}` first, then
//! `{"type":"move","dir":"up"|"down"|"left"|"right"}`. Server to client: `welcome` (your
//! id and the whole state), then `tick` diffs; `error` for a bad message (the connection
//! stays open).

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use sockjet::{Broadcast, Connection, Message, Sender};
use tokio::sync::mpsc;

use crate::json_error;

/// Board size in cells.
pub const WIDTH: i32 = 24;
/// Board size in cells.
pub const HEIGHT: i32 = 16;
/// Coins on the board at any time.
const COINS: usize = 8;
/// Server ticks per second.
pub const TICK_HZ: u64 = 20;
/// Most players at once; beyond, a join is refused with an error.
const MAX_PLAYERS: usize = 64;

/// A player's public state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Player {
    /// Unique for the life of the server.
    pub id: u32,
    /// Shown on the board.
    pub name: String,
    /// Hue in degrees, for the player's color.
    pub hue: u16,
    /// Column.
    pub x: i32,
    /// Row.
    pub y: i32,
    /// Coins collected.
    pub score: u32,
}

/// A move, one cell.
#[derive(Clone, Copy, Debug, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// y - 1
    Up,
    /// y + 1
    Down,
    /// x - 1
    Left,
    /// x + 1
    Right,
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum ClientMessage {
    Join { name: String },
    Move { dir: Direction },
}

/// One tick's changes.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Diff {
    /// The tick number.
    pub tick: u64,
    /// Players that joined, moved or scored: their whole record.
    pub players: Vec<Player>,
    /// Ids of players that left.
    pub left: Vec<u32>,
    /// Coins that appeared.
    pub coins_added: Vec<(i32, i32)>,
    /// Coins collected.
    pub coins_removed: Vec<(i32, i32)>,
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.players.is_empty()
            && self.left.is_empty()
            && self.coins_added.is_empty()
            && self.coins_removed.is_empty()
    }
}

/// The whole game, owned by the tick loop: no locks.
#[derive(Debug)]
pub struct GameState {
    tick: u64,
    next_id: u32,
    players: BTreeMap<u32, Player>,
    coins: Vec<(i32, i32)>,
    /// Each player's move for the next tick (the last one sent wins).
    moves: BTreeMap<u32, Direction>,
    diff: Diff,
    rng: fastrand::Rng,
}

impl GameState {
    /// A board with its coins, `seed` for the random placements.
    pub fn new(seed: u64) -> Self {
        let mut state = Self {
            tick: 0,
            next_id: 1,
            players: BTreeMap::new(),
            coins: Vec::new(),
            moves: BTreeMap::new(),
            diff: Diff::default(),
            rng: fastrand::Rng::with_seed(seed),
        };
        while state.coins.len() < COINS {
            state.spawn_coin();
        }
        state.diff = Diff::default();
        state
    }

    /// Adds a player on a free cell and returns its id, or `None` when the game is full.
    pub fn join(&mut self, name: &str) -> Option<u32> {
        if self.players.len() >= MAX_PLAYERS {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let (x, y) = self.free_cell();
        let player = Player {
            id,
            name: name.to_owned(),
            hue: self.rng.u16(0..360),
            x,
            y,
            score: 0,
        };
        self.diff.players.push(player.clone());
        self.players.insert(id, player);
        Some(id)
    }

    /// Removes a player.
    pub fn leave(&mut self, id: u32) {
        if self.players.remove(&id).is_some() {
            self.moves.remove(&id);
            self.diff.players.retain(|p| p.id != id);
            self.diff.left.push(id);
        }
    }

    /// Records a player's move for the next tick.
    pub fn input(&mut self, id: u32, direction: Direction) {
        if self.players.contains_key(&id) {
            self.moves.insert(id, direction);
        }
    }

    /// Applies the moves, collects coins, and returns what changed (`None`: nothing).
    pub fn tick(&mut self) -> Option<Diff> {
        self.tick += 1;
        for (id, direction) in std::mem::take(&mut self.moves) {
            let Some(player) = self.players.get_mut(&id) else {
                continue;
            };
            let (dx, dy) = match direction {
                Direction::Up => (0, -1),
                Direction::Down => (0, 1),
                Direction::Left => (-1, 0),
                Direction::Right => (1, 0),
            };
            let (x, y) = (player.x + dx, player.y + dy);
            if !(0..WIDTH).contains(&x) || !(0..HEIGHT).contains(&y) {
                continue;
            }
            (player.x, player.y) = (x, y);
            if let Some(index) = self.coins.iter().position(|&c| c == (x, y)) {
                player.score += 1;
                self.coins.swap_remove(index);
                self.diff.coins_removed.push((x, y));
            }
            let player = player.clone();
            self.diff.players.retain(|p| p.id != id);
            self.diff.players.push(player);
        }
        while self.coins.len() < COINS {
            self.spawn_coin();
        }
        let mut diff = std::mem::take(&mut self.diff);
        diff.tick = self.tick;
        (!diff.is_empty()).then_some(diff)
    }

    /// Everything, for a player who just joined.
    pub fn snapshot(&self, you: u32) -> serde_json::Value {
        serde_json::json!({
            "type": "welcome",
            "you": you,
            "width": WIDTH,
            "height": HEIGHT,
            "tick": self.tick,
            "players": self.players.values().collect::<Vec<_>>(),
            "coins": self.coins,
        })
    }

    /// A player's record.
    pub fn player(&self, id: u32) -> Option<&Player> {
        self.players.get(&id)
    }

    /// Coins on the board.
    pub fn coins(&self) -> &[(i32, i32)] {
        &self.coins
    }

    fn spawn_coin(&mut self) {
        let cell = self.free_cell();
        self.coins.push(cell);
        self.diff.coins_added.push(cell);
    }

    /// A random cell without a coin or a player (the board is never nearly full:
    /// 384 cells for at most 72 things).
    fn free_cell(&mut self) -> (i32, i32) {
        loop {
            let cell = (self.rng.i32(0..WIDTH), self.rng.i32(0..HEIGHT));
            let taken =
                self.coins.contains(&cell) || self.players.values().any(|p| (p.x, p.y) == cell);
            if !taken {
                return cell;
            }
        }
    }
}

/// What connection handlers tell the tick loop.
enum Command {
    Join {
        name: String,
        sender: Sender,
        reply: tokio::sync::oneshot::Sender<Option<u32>>,
    },
    Move(u32, Direction),
    Leave(u32),
}

/// The running game: a handle to its tick loop.
#[derive(Clone, Debug)]
pub struct Game {
    commands: mpsc::Sender<Command>,
}

impl Game {
    /// Starts the tick loop on the current runtime.
    pub fn start() -> Self {
        // Bounded: a flood of moves waits (each player's handler) rather than growing.
        let (commands, inbox) = mpsc::channel(1024);
        tokio::spawn(tick_loop(inbox));
        Self { commands }
    }

    /// Runs one player's connection.
    pub async fn play(&self, mut ws: Connection) {
        let mut id = None;
        while let Ok(Some(message)) = ws.recv().await {
            let Some(text) = message.as_text() else {
                let _ = ws
                    .send(json_error("binary messages are not part of this game"))
                    .await;
                continue;
            };
            let command = match serde_json::from_str::<ClientMessage>(text) {
                Ok(command) => command,
                Err(error) => {
                    let _ = ws.send(json_error(&format!("bad message: {error}"))).await;
                    continue;
                }
            };
            match (command, id) {
                (ClientMessage::Join { name }, None) => {
                    let name = name.trim();
                    if name.is_empty() || name.chars().count() > 16 {
                        let _ = ws.send(json_error("a name has 1 to 16 characters")).await;
                        continue;
                    }
                    let (reply, joined) = tokio::sync::oneshot::channel();
                    let join = Command::Join {
                        name: name.to_owned(),
                        sender: ws.sender(),
                        reply,
                    };
                    if self.commands.send(join).await.is_err() {
                        return;
                    }
                    match joined.await {
                        Ok(Some(player)) => id = Some(player),
                        _ => {
                            let _ = ws.send(json_error("the game is full")).await;
                        }
                    }
                }
                (ClientMessage::Join { .. }, Some(_)) => {
                    let _ = ws.send(json_error("already joined")).await;
                }
                (ClientMessage::Move { dir }, Some(player)) => {
                    if self
                        .commands
                        .send(Command::Move(player, dir))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                (ClientMessage::Move { .. }, None) => {
                    let _ = ws.send(json_error("join first")).await;
                }
            }
        }
        if let Some(player) = id {
            let _ = self.commands.send(Command::Leave(player)).await;
        }
    }
}

async fn tick_loop(mut inbox: mpsc::Receiver<Command>) {
    let mut state = GameState::new(fastrand::u64(..));
    let mut players: Vec<(u32, Sender)> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / TICK_HZ));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            command = inbox.recv() => match command {
                None => return,
                Some(Command::Join { name, sender, reply }) => {
                    let id = state.join(&name);
                    if let Some(id) = id {
                        // The snapshot goes first, then diffs; the join itself also shows
                        // in the next diff for everyone else.
                        let snapshot = Message::text(state.snapshot(id).to_string());
                        let _ = Broadcast::new(snapshot).send_to([&sender]);
                        players.push((id, sender));
                    }
                    let _ = reply.send(id);
                }
                Some(Command::Move(id, direction)) => state.input(id, direction),
                Some(Command::Leave(id)) => {
                    state.leave(id);
                    players.retain(|(player, _)| *player != id);
                }
            },
            _ = ticker.tick() => {
                players.retain(|(id, sender)| {
                    let open = !sender.is_closed();
                    if !open {
                        state.leave(*id);
                    }
                    open
                });
                if let Some(diff) = state.tick() {
                    let text = serde_json::json!({ "type": "tick", "diff": diff }).to_string();
                    sockjet::broadcast(players.iter().map(|(_, sender)| sender), text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn players_move_within_the_board_and_collect_coins() {
        let mut game = GameState::new(7);
        let ada = game.join("ada").unwrap();
        let first = game.tick().unwrap();
        assert_eq!(first.players.len(), 1, "the join shows in the first diff");
        assert!(game.tick().is_none(), "nothing changed");

        // Walk into the top-left corner and beyond: the walls stop her.
        for _ in 0..(WIDTH + HEIGHT) {
            game.input(ada, Direction::Up);
            game.tick();
            game.input(ada, Direction::Left);
            game.tick();
        }
        let player = game.player(ada).unwrap().clone();
        assert_eq!((player.x, player.y), (0, 0));

        // Put a coin in her way.
        game.coins[0] = (1, 0);
        game.input(ada, Direction::Right);
        let diff = game.tick().unwrap();
        assert_eq!(game.player(ada).unwrap().score, 1 + player.score);
        assert!(diff.coins_removed.contains(&(1, 0)));
        assert_eq!(diff.coins_added.len(), 1, "a new coin replaces it");
        assert_eq!(game.coins().len(), COINS);
    }

    #[test]
    fn the_last_move_in_a_tick_wins_and_leavers_are_announced() {
        let mut game = GameState::new(1);
        let a = game.join("a").unwrap();
        let b = game.join("b").unwrap();
        game.tick();
        let before = game.player(a).unwrap().clone();
        game.input(a, Direction::Left);
        game.input(a, Direction::Right);
        game.tick();
        let after = game.player(a).unwrap();
        assert!(after.x == before.x + 1 || before.x == WIDTH - 1);
        game.leave(b);
        let diff = game.tick().unwrap();
        assert_eq!(diff.left, vec![b]);
        game.input(b, Direction::Up);
        assert!(game.tick().is_none(), "a leaver's input is ignored");
    }

    #[test]
    fn the_game_has_room_for_a_bounded_number_of_players() {
        let mut game = GameState::new(3);
        for i in 0..MAX_PLAYERS {
            assert!(game.join(&format!("p{i}")).is_some());
        }
        assert!(game.join("one too many").is_none());
    }
}
