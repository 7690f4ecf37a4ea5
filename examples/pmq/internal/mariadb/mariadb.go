// Package mariadb runs a private MariaDB server on 127.0.0.1 for the demo
// and the tests: its own data directory, socket and port, never the system
// service.
package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver Start checks the server with
)

// ErrNotInstalled says that no MariaDB server binary was found.
var ErrNotInstalled = errors.New("mariadbd not found: install MariaDB with `apt-get install -y mariadb-server` (Debian/Ubuntu)")

// Settings are the server options beyond the data directory and addresses.
// innodb_flush_log_at_trx_commit=2 writes the log at every commit but syncs
// it to disk once a second: a demo setting (an OS crash may lose the last
// second), several times faster than 1 on a laptop disk.
var Settings = []string{
	"--innodb-flush-log-at-trx-commit=2",
	"--innodb-buffer-pool-size=256M",
	"--innodb-log-file-size=256M",
	"--max-connections=1000",
	"--skip-log-bin",
	"--skip-name-resolve",
	"--character-set-server=utf8mb4",
}

// Server is a running private MariaDB.
type Server struct {
	// Dir holds the data directory, socket, pid file and error log.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the server process has exited
	exitErr error         // its exit status, once exited is closed
}

// DSN is the go-sql-driver/mysql DSN of database on the server, as root.
func (s *Server) DSN(database string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", s.Port, database)
}

// Binary returns the path of the MariaDB server, or ErrNotInstalled.
func Binary() (string, error) {
	for _, name := range []string{"mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Start initializes dir if it holds no data directory yet, starts the server
// on port (0 picks a free one), waits until it answers and creates database
// (if not empty). Stop it with Stop.
func Start(dir string, port int, database string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "mysql")); err != nil {
		if err := install(dir, data); err != nil {
			return nil, err
		}
	}
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	args := []string{"--no-defaults", "--datadir=" + data, "--socket=" + filepath.Join(dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--log-error=" + filepath.Join(dir, "error.log"),
		"--tmpdir=" + filepath.Join(dir, "tmp"),
		fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	args = append(args, Settings...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &Server{Dir: dir, Port: port, cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.exitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.wait(database); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func install(dir, data string) error {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return err
	}
	// A private tmpdir: servers bootstrapped at once in the shared /tmp
	// collide on their temporary table names.
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db",
		"--tmpdir=" + filepath.Join(dir, "tmp")}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	tool := "mariadb-install-db"
	if _, err := exec.LookPath(tool); err != nil {
		tool = "mysql_install_db" // older packages
	}
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --datadir=%s failed: %v\n%s", tool, data, err, out)
	}
	return nil
}

// wait polls the server until it answers, then creates the database.
func (s *Server) wait(database string) error {
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-s.exited:
			return fmt.Errorf("mariadbd exited (%v); see %s", s.exitErr, filepath.Join(s.Dir, "error.log"))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbd on port %d did not answer within 60 s (%v); see %s", s.Port, err, filepath.Join(s.Dir, "error.log"))
		}
	}
	if database != "" {
		if _, err := db.Exec("CREATE DATABASE IF NOT EXISTS " + database); err != nil {
			return fmt.Errorf("creating database %s: %w", database, err)
		}
	}
	return nil
}

// Stop shuts the server down cleanly (SIGTERM), or kills it after 30 s. It
// may be called more than once.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Wait waits until the server exits and returns its exit status.
func (s *Server) Wait() error {
	<-s.exited
	return s.exitErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
