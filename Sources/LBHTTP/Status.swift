/// Reason phrases and nginx's default error pages.
public enum Status {
    public static func reason(_ code: Int) -> String {
        switch code {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Moved Temporarily"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Not Allowed"
        case 406: "Not Acceptable"
        case 408: "Request Time-out"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Request Entity Too Large"
        case 414: "Request-URI Too Large"
        case 415: "Unsupported Media Type"
        case 416: "Requested Range Not Satisfiable"
        case 421: "Misdirected Request"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Temporarily Unavailable"
        case 504: "Gateway Time-out"
        case 505: "HTTP Version Not Supported"
        default: ""
        }
    }

    /// nginx's built-in error page body.
    /// nginx's internal statuses that go out as 400 with a page of their own
    /// (ngx_http_special_response.c): 494 a request header too large, 495–497 TLS refusals.
    public static func specialReason(_ code: Int) -> String? {
        switch code {
        case 494: "Request Header Or Cookie Too Large"
        case 495: "The SSL certificate error"
        case 496: "No required SSL certificate was sent"
        case 497: "The plain HTTP request was sent to HTTPS port"
        default: nil
        }
    }

    /// The 400 page of a special status (`specialReason`).
    public static func specialPage(_ code: Int, serverTokens: Bool) -> [UInt8] {
        let reason = specialReason(code) ?? reason(400)
        let server = serverTokens ? LBVersion.product : "lb"
        return Array("<html>\r\n<head><title>400 \(reason)</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>\(reason)</center>\r\n<hr><center>\(server)</center>\r\n</body>\r\n</html>\r\n".utf8)
    }

    public static func page(_ code: Int, serverTokens: Bool) -> [UInt8] {
        // nginx's built-in 302 page says "Found" though its status line says "Moved Temporarily",
        // and its 401 page "Authorization Required" (ngx_http_special_response.c).
        let title = code == 302 ? "302 Found" : code == 401 ? "401 Authorization Required" : "\(code) \(reason(code))"
        let server = serverTokens ? LBVersion.product : "lb"
        return Array("<html>\r\n<head><title>\(title)</title></head>\r\n<body>\r\n<center><h1>\(title)</h1></center>\r\n<hr><center>\(server)</center>\r\n</body>\r\n</html>\r\n".utf8)
    }
}

/// Formats HTTP dates and nginx's log times, cached per second.
public struct DateCache {
    private var second = -1
    public private(set) var httpDate: [UInt8] = []
    public private(set) var logTime: [UInt8] = []
    public private(set) var iso8601: [UInt8] = []

    public init() {}

    static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Refreshes the cached strings when the second changes.
    public mutating func update(_ now: Int) {
        if now == second { return }
        second = now
        let c = DateCache.civil(now)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        httpDate = Array("\(DateCache.days[c.weekday]), \(two(c.day)) \(DateCache.months[c.month - 1]) \(c.year) \(two(c.hour)):\(two(c.minute)):\(two(c.second)) GMT".utf8)
        logTime = Array("\(two(c.day))/\(DateCache.months[c.month - 1])/\(c.year):\(two(c.hour)):\(two(c.minute)):\(two(c.second)) +0000".utf8)
        iso8601 = Array("\(c.year)-\(two(c.month))-\(two(c.day))T\(two(c.hour)):\(two(c.minute)):\(two(c.second))+00:00".utf8)
    }

    /// HTTP date of any time (Last-Modified, Expires).
    public static func httpDate(_ t: Int) -> String {
        var d = DateCache()
        d.update(t)
        return String(decoding: d.httpDate, as: UTF8.self)
    }

    /// Days-from-civil inverse (Howard Hinnant's algorithm), UTC.
    public static func civil(_ t: Int) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, weekday: Int) {
        let days = t >= 0 ? t / 86400 : (t - 86399) / 86400
        let secs = t - days * 86400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let weekday = ((days % 7) + 11) % 7 // 1970-01-01 was a Thursday
        return (m <= 2 ? y + 1 : y, m, d, secs / 3600, secs % 3600 / 60, secs % 60, weekday)
    }

    /// Parses an HTTP date (IMF-fixdate) into seconds, nil when malformed.
    public static func parse(_ s: String) -> Int? {
        // "Sun, 06 Nov 1994 08:49:37 GMT"
        let parts = s.split(separator: " ")
        guard parts.count == 6, let day = Int(parts[1]), let mi = months.firstIndex(of: String(parts[2])), let year = Int(parts[3]) else { return nil }
        let hms = parts[4].split(separator: ":")
        guard hms.count == 3, let h = Int(hms[0]), let m = Int(hms[1]), let sec = Int(hms[2]) else { return nil }
        let month = mi + 1
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86400 + h * 3600 + m * 60 + sec
    }
}
