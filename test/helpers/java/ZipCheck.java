import java.io.BufferedInputStream;
import java.io.FileInputStream;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * Reads each archive given on the command line the way MMS and TorchServe do (java.util.zip.ZipInputStream,
 * local headers only) and prints one line per entry: name, size, crc (hex), method. ZipInputStream itself
 * rejects STORED entries with data descriptors, bad CRCs and malformed names; any exception exits 1.
 */
public class ZipCheck {
    public static void main(String[] args) throws Exception {
        byte[] buf = new byte[1 << 16];
        for (String file : args) {
            System.out.println("archive\t" + file);
            int count = 0;
            try (ZipInputStream z = new ZipInputStream(new BufferedInputStream(new FileInputStream(file), 1 << 16))) {
                ZipEntry e;
                while ((e = z.getNextEntry()) != null) {
                    long size = 0;
                    int r;
                    CRC32 crc = new CRC32();
                    while ((r = z.read(buf)) > 0) {
                        size += r;
                        crc.update(buf, 0, r);
                    }
                    System.out.println("entry\t" + e.getName() + "\t" + size + "\t" + Long.toHexString(crc.getValue()) + "\t" + e.getMethod());
                    count++;
                }
            } catch (Exception ex) {
                System.out.println("error\t" + ex);
                System.exit(1);
            }
            System.out.println("entries\t" + count);
        }
    }
}
