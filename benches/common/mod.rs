//! What the storage benchmarks share (`mod common;` in each): scratch directories, and the
//! baseline every durable figure is compared with — one single-row `INSERT` + `COMMIT` on the
//! same SQLite settings as `SqliteStore` (WAL, `synchronous=FULL`: every commit is fsync'd).

use std::path::PathBuf;

/// A fresh, empty directory under the system's temporary directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("taskflow-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database with one table, on `SqliteStore`'s pragmas, for the bare commit.
pub struct BareSqlite {
    conn: rusqlite::Connection,
    rows: u64,
    _dir: Scratch,
}

impl BareSqlite {
    pub fn new() -> Self {
        let dir = Scratch::new("bare");
        let conn = rusqlite::Connection::open(dir.0.join("bare.db")).unwrap();
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        BareSqlite {
            conn,
            rows: 0,
            _dir: dir,
        }
    }

    /// One row, one fsync'd commit (autocommit: the statement is its own transaction).
    pub fn insert_commit(&mut self) {
        self.rows += 1;
        self.conn
            .execute("INSERT INTO t (v) VALUES (?1)", [self.rows.to_string()])
            .unwrap();
    }
}
