/// lb's version, for the Server header, error pages, logs, the status page and `lb -v`.
public enum LBVersion {
    public static let number = "0.1.0"
    /// `lb/0.1.0`, as nginx writes `nginx/1.22.1`.
    public static let product = "lb/" + number
}
