package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// A backup file is the store's badger keys and values as one read view saw them,
// in etcd's snapshot-file envelope so that `etcdctl snapshot save` accepts it:
//
//	magic (backupMagic)
//	uvarint length | JSON BackupInfo
//	{ uvarint len(key) | key | uvarint len(value) | value }   every key, in key order
//	uvarint 0                                                 end (no key is empty)
//	zero bytes up to a multiple of 512
//	SHA-256 of everything above (32 bytes)
//
// Only the newest value of each badger key is kept: the store's own history lives
// in its revision records, not in badger's versions, so the file does not depend
// on badger's internal formats (badger's own Backup writes its versions and meta
// bits, and in a non-managed database reads with one transaction per goroutine,
// which is not one read view).
const backupMagic = "RHIZOME-BACKUP\x00\x01"

// backupAlign is etcd's convention: a snapshot file is a multiple of 512 bytes
// followed by the SHA-256 of those bytes (etcdctl checks the length).
const backupAlign = 512

// ErrBadBackup is returned by Restore for a file that is not a whole, intact
// Rhizome backup.
var ErrBadBackup = errors.New("store: not an intact rhizome backup")

// BackupInfo describes a backup: the site it was taken from and the revisions it
// holds, as the store's meta said in the read view taken.
type BackupInfo struct {
	Format          int       `json:"format"`
	Site            string    `json:"site"`
	Revision        int64     `json:"revision"`
	CompactRevision int64     `json:"compact_revision"`
	Taken           time.Time `json:"taken"`
	// Size is the length of the file, estimated before it is written (exact unless
	// values larger than badger's value threshold are stored: badger reports
	// their sizes approximately). Not stored in the file.
	Size int64 `json:"-"`
}

// Backup is one consistent read view of the store, ready to be written out. It
// holds a badger read transaction: writers go on, and badger keeps what the view
// sees until Close. A Backup is used by one goroutine.
type Backup struct {
	m      *metrics
	txn    *badger.Txn
	info   BackupInfo
	header []byte
}

// OpenBackup takes a read view of the whole store. The caller must Close it.
func (s *Store) OpenBackup() (*Backup, error) {
	select {
	case <-s.closing:
		return nil, ErrClosed
	default:
	}
	txn := s.newView()
	b := &Backup{m: s.metrics, txn: txn, info: BackupInfo{Format: 1, Site: s.cfg.Site, Taken: s.cfg.Now().UTC()}}
	if err := b.readInfo(); err != nil {
		txn.Discard()
		return nil, fmt.Errorf("store: backup: %w", err)
	}
	return b, nil
}

// Info describes what WriteTo writes.
func (b *Backup) Info() BackupInfo { return b.info }

// Close releases the read view.
func (b *Backup) Close() { b.txn.Discard() }

func (b *Backup) readInfo() error {
	var err error
	if b.info.Revision, err = metaIn(b.txn, metaRev, 1); err != nil {
		return err
	}
	if b.info.CompactRevision, err = metaIn(b.txn, metaCompact, -1); err != nil {
		return err
	}
	js, err := json.Marshal(b.info)
	if err != nil {
		return err
	}
	b.header = append([]byte(backupMagic), binary.AppendUvarint(nil, uint64(len(js)))...)
	b.header = append(b.header, js...)
	size := int64(len(b.header)) + 1
	err = b.each(false, func(item *badger.Item) error {
		k, v := int64(len(item.Key())), item.ValueSize()
		size += k + v + int64(uvarintLen(uint64(k))+uvarintLen(uint64(v)))
		return nil
	})
	b.info.Size = (size+backupAlign-1)/backupAlign*backupAlign + sha256.Size
	return err
}

// each visits every key the backup holds, in key order: all of them, except
// revision records past the meta revision, which a commit that crashed before
// its end may have left and which recovery ignores.
func (b *Backup) each(values bool, fn func(*badger.Item) error) error {
	it := b.txn.NewIterator(badger.IteratorOptions{PrefetchValues: values, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if k[0] == prefixRev && len(k) == 13 {
			if main, _ := parseRevKey(k); main > b.info.Revision {
				continue
			}
		}
		if err := fn(it.Item()); err != nil {
			return err
		}
	}
	return nil
}

// WriteTo writes the backup file to w. It may be called once.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	defer timer(b.m.backupSeconds)()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 64<<10)
	cw := &countWriter{w: bw}
	cw.Write(b.header)
	var frame []byte
	err := b.each(true, func(item *badger.Item) error {
		return item.Value(func(v []byte) error {
			frame = binary.AppendUvarint(frame[:0], uint64(len(item.Key())))
			frame = append(frame, item.Key()...)
			frame = binary.AppendUvarint(frame, uint64(len(v)))
			cw.Write(frame)
			cw.Write(v)
			return cw.err
		})
	})
	if err != nil {
		return cw.n, fmt.Errorf("store: backup: %w", err)
	}
	cw.Write([]byte{0})
	cw.Write(make([]byte, (backupAlign-cw.n%backupAlign)%backupAlign))
	if cw.err == nil {
		cw.err = bw.Flush()
	}
	if cw.err != nil {
		return cw.n, fmt.Errorf("store: backup: %w", cw.err)
	}
	n, err := w.Write(h.Sum(nil))
	return cw.n + int64(n), err
}

// countWriter counts what it writes and keeps the first error.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func uvarintLen(v uint64) int { return len(binary.AppendUvarint(nil, v)) }

// RestoreConfig says where and as which site a backup is restored.
type RestoreConfig struct {
	// Dir is the store directory to create; it must not exist or be empty.
	Dir string
	// Site is the name the restored store will serve as (Config.Site); it may
	// be the backup's own. The restored store is a new incarnation of the site
	// (Store.Origin), so its changes never reuse the sequence numbers of changes
	// the site made after the backup.
	Site   string
	Logger *slog.Logger
}

// Restore creates a store directory from a backup file read from r. Nothing is
// left at Dir unless the whole file was read and its checksum matched.
func Restore(r io.Reader, cfg RestoreConfig) (BackupInfo, error) {
	if cfg.Dir == "" || cfg.Site == "" || cfg.Logger == nil {
		return BackupInfo{}, errors.New("store: restore: Dir, Site and Logger are required")
	}
	if entries, err := os.ReadDir(cfg.Dir); err == nil && len(entries) > 0 {
		return BackupInfo{}, fmt.Errorf("store: restore: %s is not empty", cfg.Dir)
	}
	tmp := cfg.Dir + ".restoring"
	if err := os.RemoveAll(tmp); err != nil {
		return BackupInfo{}, fmt.Errorf("store: restore: %w", err)
	}
	info, err := restoreInto(r, tmp, cfg)
	if err == nil {
		os.Remove(cfg.Dir) // empty, if it exists
		err = os.Rename(tmp, cfg.Dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return BackupInfo{}, fmt.Errorf("store: restore: %w", err)
	}
	return info, nil
}

func restoreInto(r io.Reader, dir string, cfg RestoreConfig) (BackupInfo, error) {
	db, err := badger.Open(badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(badgerLogger{cfg.Logger}))
	if err != nil {
		return BackupInfo{}, err
	}
	wb := db.NewWriteBatch()
	br := &backupReader{r: bufio.NewReaderSize(r, 64<<10), h: sha256.New()}
	info, err := br.load(wb)
	if err == nil {
		err = wb.Set(metaSite, []byte(cfg.Site))
	}
	if err == nil {
		// A new incarnation at its first Open: its own changes must not reuse
		// the sequence numbers of the changes the backup's site made after it.
		err = wb.Set(metaIncarnation, nil)
	}
	if err == nil {
		err = br.checkEnd()
	}
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return info, err
}

// backupReader parses a backup file as it streams in, hashing what it consumes.
type backupReader struct {
	r *bufio.Reader
	h hash.Hash
	n int64 // bytes consumed
}

func (br *backupReader) read(n uint64) ([]byte, error) {
	if n > 1<<31 {
		return nil, fmt.Errorf("%w: length %d", ErrBadBackup, n)
	}
	b := make([]byte, n)
	m, err := io.ReadFull(br.r, b)
	br.n += int64(m)
	br.h.Write(b[:m])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	return b, nil
}

// ReadByte makes backupReader an io.ByteReader for binary.ReadUvarint.
func (br *backupReader) ReadByte() (byte, error) {
	c, err := br.r.ReadByte()
	if err == nil {
		br.n++
		br.h.Write([]byte{c})
	}
	return c, err
}

func (br *backupReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	return v, nil
}

// ReadBackupInfo reads the header of a backup file (only: its checksum is
// checked by Restore).
func ReadBackupInfo(r io.Reader) (BackupInfo, error) {
	br := &backupReader{r: bufio.NewReader(r), h: sha256.New()}
	info, err := br.header()
	if err != nil {
		return BackupInfo{}, fmt.Errorf("store: %w", err)
	}
	return info, nil
}

func (br *backupReader) header() (BackupInfo, error) {
	var info BackupInfo
	magic, err := br.read(uint64(len(backupMagic)))
	if err != nil || string(magic) != backupMagic {
		return info, fmt.Errorf("%w: no rhizome backup header", ErrBadBackup)
	}
	n, err := br.uvarint()
	if err != nil {
		return info, err
	}
	js, err := br.read(n)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(js, &info); err != nil || info.Format != 1 {
		return info, fmt.Errorf("%w: header: format %d, %v", ErrBadBackup, info.Format, err)
	}
	return info, nil
}

// load checks the header and writes every record to wb.
func (br *backupReader) load(wb *badger.WriteBatch) (BackupInfo, error) {
	info, err := br.header()
	if err != nil {
		return info, err
	}
	for {
		n, err := br.uvarint()
		if err != nil || n == 0 {
			return info, err
		}
		key, err := br.read(n)
		if err != nil {
			return info, err
		}
		if n, err = br.uvarint(); err != nil {
			return info, err
		}
		value, err := br.read(n)
		if err != nil {
			return info, err
		}
		// The restored store is a site of its own: not the old one's name or
		// incarnation, nor its alarm.
		if !bytes.Equal(key, metaSite) && !bytes.Equal(key, metaNoSpace) && !bytes.Equal(key, metaIncarnation) {
			if err := wb.Set(key, value); err != nil {
				return info, err
			}
		}
	}
}

// checkEnd reads the padding and checksum that follow the records.
func (br *backupReader) checkEnd() error {
	pad := (backupAlign - br.n%backupAlign) % backupAlign
	zeros, err := br.read(uint64(pad))
	if err != nil || !bytes.Equal(zeros, make([]byte, pad)) {
		return fmt.Errorf("%w: bad padding", ErrBadBackup)
	}
	want := br.h.Sum(nil)
	sum, err := br.read(sha256.Size)
	if err != nil {
		return err
	}
	if !bytes.Equal(sum, want) {
		return fmt.Errorf("%w: checksum mismatch", ErrBadBackup)
	}
	if _, err := br.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the checksum", ErrBadBackup)
	}
	return nil
}
