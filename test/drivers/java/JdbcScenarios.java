// pgjdbc scenarios for pg-tenant-proxy: prints one line per result, compared through the proxy and directly.
// Run: java -cp /usr/share/java/postgresql.jar JdbcScenarios.java URL USER PASSWORD MARKER [TENANT PROOF]
// (TENANT and PROOF: a direct connection sets the tenant context itself, as the proxy would.)
import java.io.StringReader;
import java.io.StringWriter;
import java.sql.*;
import org.postgresql.PGConnection;

public class JdbcScenarios {
  public static void main(String[] a) throws Exception {
    String m = a[3];
    try (Connection c = DriverManager.getConnection(a[0], a[1], a[2])) {
      if (a.length > 5) {
        try (PreparedStatement ps = c.prepareStatement("SELECT set_config('app.current_tenant', ?, false), set_config('app.tenant_proof', ?, false), set_config('search_path', '\"tenant_' || ? || '\", public', false)")) {
          ps.setString(1, a[4]);
          ps.setString(2, a[5]);
          ps.setString(3, a[4]);
          ps.executeQuery().close();
        }
      }
      // Past prepareThreshold (5) pgjdbc switches to a named server-side statement, used across transactions.
      try (PreparedStatement ps = c.prepareStatement("SELECT ?::int + 1, current_setting('app.current_tenant')")) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < 12; i++) {
          ps.setInt(1, i);
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            out.append(rs.getInt(1)).append(rs.getString(2).charAt(0));
          }
        }
        System.out.println("prepared " + out);
      }
      // A transaction: a batch, a savepoint rolled back after an error, a cursor read with a fetch size.
      c.setAutoCommit(false);
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO notes (body) VALUES (?)")) {
        for (int i = 0; i < 50; i++) {
          ps.setString(1, m + ":" + i);
          ps.addBatch();
        }
        System.out.println("batch " + ps.executeBatch().length);
      }
      Savepoint sp = c.setSavepoint();
      try (Statement s = c.createStatement()) {
        s.execute("SELECT 1/0");
      } catch (SQLException e) {
        System.out.println("error " + e.getSQLState());
        c.rollback(sp);
      }
      try (PreparedStatement ps = c.prepareStatement("SELECT body FROM notes WHERE starts_with(body, ?) ORDER BY id")) {
        ps.setFetchSize(7);
        ps.setString(1, m + ":");
        int n = 0;
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) n++;
        }
        System.out.println("cursor " + n);
      }
      c.commit();
      c.setAutoCommit(true);
      // COPY in (to a temporary table inside a transaction: COPY FROM refuses tables under RLS) and out.
      var copy = c.unwrap(PGConnection.class).getCopyAPI();
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.execute("CREATE TEMP TABLE copied (body text) ON COMMIT DROP");
      }
      long in = copy.copyIn("COPY copied FROM STDIN", new StringReader(m + ":c1\n" + m + ":c2\n"));
      try (Statement s = c.createStatement()) {
        s.execute("INSERT INTO notes (body) SELECT body FROM copied");
      }
      c.commit();
      c.setAutoCommit(true);
      StringWriter w = new StringWriter();
      copy.copyOut("COPY (SELECT count(*) FROM notes WHERE starts_with(body, '" + m + ":')) TO STDOUT", w);
      System.out.println("copy " + in + " " + w.toString().trim());
      try (PreparedStatement ps = c.prepareStatement("DELETE FROM notes WHERE starts_with(body, ?)")) {
        ps.setString(1, m + ":");
        System.out.println("deleted " + ps.executeUpdate());
      }
      try (ResultSet rs = c.getMetaData().getColumns(null, null, "notes", "body")) {
        System.out.println("metadata " + (rs.next() ? rs.getString("TYPE_NAME") : "none"));
      }
    }
  }
}
