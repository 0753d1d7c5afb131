import Glibc
import LBIO

/// A worker's watches of the files its open file caches hold in memory (inotify, one instance
/// per worker, read on the worker's loop): a change of a file's content reaches the caches at
/// the next loop turn (`OpenFileCache.contentChanged`). Two cached paths of one inode share the
/// kernel's watch, so watches are counted and the kernel's ends with the last.
final class FileWatcher: Pollable {
    private unowned let worker: Worker
    /// Uses of each watch (the kernel's number).
    private var uses: [Int32: Int] = [:]

    /// Nil when the system gives no inotify instance (none is then held in memory).
    init?(worker: Worker) {
        self.worker = worker
        super.init()
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        do {
            try worker.loop.register(self, events: EventLoop.readable)
        } catch {
            Glibc.close(fd)
            return nil
        }
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Watches the content of open file `file` (through its /proc/self/fd link: the inode the
    /// descriptor is, whatever its path names now); nil when the kernel refuses (out of watches).
    func watch(_ file: Int32) -> Int32? {
        let wd = inotify_add_watch(fd, "/proc/self/fd/\(file)", UInt32(IN_MODIFY))
        guard wd >= 0 else { return nil }
        uses[wd, default: 0] += 1
        return wd
    }

    func unwatch(_ wd: Int32) {
        guard let n = uses[wd] else { return }
        if n > 1 {
            uses[wd] = n - 1
        } else {
            uses[wd] = nil
            _ = inotify_rm_watch(fd, wd)
        }
    }

    override func ready(_ events: UInt32) {
        let size = 4096
        let buf = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf, size)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            var at = 0
            while at + MemoryLayout<inotify_event>.size <= n {
                let e = buf.load(fromByteOffset: at, as: inotify_event.self)
                at += MemoryLayout<inotify_event>.size + Int(e.len)
                if e.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    // Events were lost: no copy can be trusted.
                    for c in worker.openFileCaches.values { c.cache.contentChanged(watch: nil) }
                } else if e.mask & UInt32(IN_MODIFY) != 0 {
                    for c in worker.openFileCaches.values { c.cache.contentChanged(watch: e.wd) }
                } else if e.mask & UInt32(IN_IGNORED) != 0 {
                    // The kernel ended the watch (its file system went away).
                    if uses.removeValue(forKey: e.wd) != nil {
                        for c in worker.openFileCaches.values { c.cache.contentChanged(watch: e.wd) }
                    }
                }
            }
        }
    }
}
